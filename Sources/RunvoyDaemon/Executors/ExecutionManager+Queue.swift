import Glibc
import Logging
import NIOCore
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The queue: an `exec` with `wait` that cannot start now gets its id and a `queued` history row at once, tells
/// its client where it stands (`queued` events), and waits until the scheduler starts it, or it leaves the queue
/// (`cancel`, its wait timeout, its client going away, the daemon stopping) and never runs.
extension ExecutionManager {
    /// An `exec` that may wait, with the id it gets at once.
    struct WaitRequest: Sendable {
        let executionID: String
        let createdAtMs: Int64
        /// Give up after this long in the queue; no bound when nil.
        let timeout: Duration?
    }

    /// What admission gave a plan: a ticket of the scheduler, running (a launch slot) or waiting.
    struct Admission: Sendable {
        let ticket: UInt64
        /// Set when it waits in the queue.
        let waiting: WaitRequest?
    }

    /// The client of a waiting `exec`.
    struct QueueClient: Sendable {
        /// Sends a `queued` event; throws when the client is gone.
        let send: @Sendable (QueuedEvent) async throws -> Void
        /// Calls its argument once the client's input closes (at once if it has); returns what undoes that.
        let onHangup: @Sendable (@escaping @Sendable () -> Void) -> @Sendable () -> Void
        /// Whether the client's input has closed.
        let isGone: @Sendable () -> Bool
        /// Sends an `approval` event (a request that waits for approval); throws when the client is gone.
        var sendApproval: @Sendable (ApprovalEvent) async throws -> Void = { _ in }
    }

    /// The wait `params` asks for, or nil for none. An approved plan always may wait, under its request's id.
    static func waitRequest(
        _ params: ExecParams, _ plan: ExecPlan, approval: ApprovalTicket? = nil
    ) throws(ExecRefusal) -> WaitRequest? {
        guard params.wait == true || approval != nil else { return nil }
        var timeout: Duration?
        if let ms = params.waitTimeoutMs {
            guard ms > 0, ms <= Authorizer.longestDurationMs else {
                throw plan.refusal(
                    RunvoyError(
                        .invalidArgument,
                        "wait_timeout_ms must be positive and below 10^13 (about 317 years), not \(ms)"))
            }
            timeout = .milliseconds(ms)
        }
        if let approval {
            return WaitRequest(executionID: approval.id, createdAtMs: approval.record.createdAtMs, timeout: timeout)
        }
        let now = WallClock.milliseconds()
        return WaitRequest(
            executionID: ExecutionID.make(milliseconds: UInt64(now)), createdAtMs: now, timeout: timeout)
    }

    /// Puts `request` of `plan` in the waiting room (it already waits in the scheduler).
    func queue(
        _ request: AdmissionScheduler<UInt64>.Request, _ plan: ExecPlan, _ waiting: WaitRequest, _ state: inout State
    ) {
        state.room.add(
            WaitingRoom.Waiter(
                ticket: request.id, executionID: waiting.executionID, executor: request.executor, uid: request.uid,
                holder: request.holder, concurrency: request.concurrency, queuedAtMs: waiting.createdAtMs,
                locks: request.locks, caller: plan.caller, config: plan.config, step: plan.playbookStep))
    }

    /// The scheduler started `started` (waiters): each takes a launch slot and its request launches it. While
    /// shutting down, none does: each leaves instead, and its slot is freed at once.
    func began(_ started: [UInt64], _ state: inout State) {
        state.room.generation &+= 1
        var work = started
        while let ticket = work.popLast() {
            if case .serving = state.phase {
                if state.room.end(ticket, .started) { state.launching += 1 }
            } else if state.room.end(ticket, .left(error: Self.stopping, cause: "shutdown")) {
                work += state.scheduler.finish(ticket, within: state.limits)
            }
        }
    }

    static var stopping: RunvoyError {
        RunvoyError(.cancelled, "runvoyd is stopping; the execution waited in the queue and did not run")
    }

    /// At shutdown: every waiter leaves the queue.
    func emptyQueue(_ state: inout State) {
        stopTicker(&state)
        for ticket in state.room.waitingTickets.reversed()
        where state.room.end(ticket, .left(error: Self.stopping, cause: "shutdown")) {
            began(state.scheduler.cancel(ticket, within: state.limits) ?? [], &state)
        }
    }

    /// Takes `ticket` out of the queue; false when it no longer waits (it started, or left already).
    @discardableResult
    func leave(_ ticket: UInt64, _ error: RunvoyError, cause: String) -> Bool {
        state.withLock { state in
            guard state.room.end(ticket, .left(error: error, cause: cause)) else { return false }
            began(state.scheduler.cancel(ticket, within: state.limits) ?? [], &state)
            return true
        }
    }

    /// `cancel`: takes the waiting execution `executionID` out of the queue; false when it does not wait.
    func cancel(_ executionID: String, by who: String) -> Bool {
        guard let ticket = state.withLock({ $0.room.ticket(of: executionID) }) else { return false }
        let error = RunvoyError(
            .cancelled, "execution \(executionID) was cancelled by \(who) while it waited in the queue; it did not run")
        return leave(ticket, error, cause: "cancelled")
    }

    /// The configuration in force changed: the limits what ends or leaves is judged by are its, every waiter
    /// needs its executor's `concurrency` and locks as it declares them now, and has the share of the roles its
    /// user holds now (an administrator demoted while it waits waits as what it is now; running executions keep
    /// what they hold), and whatever waits and fits now starts.
    func limitsChanged(_ config: DaemonConfig) {
        state.withLock { state in
            state.limits = .executions(config.limits)
            state.limitsObserved = true
            state.config = config
            let executors = Dictionary(config.executors.map { ($0.name, $0) }) { first, _ in first }
            for request in state.scheduler.waiters {
                guard let executor = executors[request.executor] else { continue }
                var replanned = request
                replanned.concurrency = executor.concurrency
                // A step of a run that holds locks claims none: its run holds them all. One whose executor now
                // names locks its run does not hold must not wait for them while its run holds others (runs could
                // wait for each other for ever): it claims none and is refused at its turn (`redecided`). A run's
                // own claim, whose key is no executor's, is not replanned.
                let step = state.room.waiters[request.id]?.step
                let locks = step.map { $0.locks.isEmpty ? executor.locks : [] } ?? executor.locks
                replanned.locks = locks.map { AdmissionScheduler<UInt64>.LockClaim(name: $0.name, shared: $0.shared) }
                if let caller = state.room.waiters[request.id]?.caller {
                    replanned.holder = FairShares.Holder(roles: Authorizer.roles(caller, config))
                }
                if replanned != request { state.scheduler.replan(replanned) }
            }
            state.room.generation &+= 1
            began(state.scheduler.reconsider(within: state.limits), &state)
        }
    }

    /// Whether `executionID` waits in the queue.
    func isQueued(_ executionID: String) -> Bool { state.withLock { $0.room.ticket(of: executionID) != nil } }

    /// How many executions wait in the queue.
    var queuedCount: Int { state.withLock { $0.room.count } }

    /// When `admission` waits: records it, waits for its turn while telling `client` where it stands, and returns
    /// its id, creation time and plan (decided again at its turn) once it holds its slot. Throws what its client
    /// is told when it leaves instead.
    func waitIfQueued(
        _ admission: Admission, _ plan: ExecPlan, params: ExecParams, client: QueueClient?,
        approval: ApprovalTicket? = nil
    ) async throws(RunvoyError) -> (id: String, createdAtMs: Int64, plan: ExecPlan)? {
        guard let waiting = admission.waiting else { return nil }
        let ticket = admission.ticket
        let audit = plan.auditLog(logger: logger, journal: launcher.journal)
        do throws(RunvoyError) {
            try await recordQueued(plan, waiting, approval: approval)
        } catch {
            let told = error
            leave(ticket, told, cause: "store")
            // Another execution's end may have started it already: then its slot (and locks) are given back here.
            if case .started = await turn(ticket) { release(ticket, plan.config) }
            throw deny(plan.refusal(told), caller: plan.caller, config: plan.config)
        }
        let first = state.withLock { queueEvent(ticket, plan.requestID, &$0) }
        refusals.recordCoalesced(QueueRecords.queued(plan, waiting, first), caller: plan.caller, audit: audit)
        let watch = watch(ticket, waiting, plan.requestID, client: client, first: first)
        let turn = await turn(ticket)
        watch()
        let waitedUsec = (WallClock.milliseconds() - waiting.createdAtMs) * 1000
        switch turn {
        case .started where client?.isGone() == true:
            // Its client went away as its turn came: it never runs, and the slot goes to the next.
            release(ticket, plan.config)
            let gone = Self.clientGone
            endQueued(waiting.executionID, reason: gone.message)
            refusals.recordCoalesced(
                QueueRecords.cancelled(plan, waiting, cause: "client_gone", reason: gone, waitedUsec: waitedUsec),
                caller: plan.caller, audit: audit)
            throw gone
        case .started:
            let plan = try redecided(plan, params, ticket, waiting, waitedUsec: waitedUsec, audit: audit)
            try await spend(approval, plan, ticket, waiting, waitedUsec: waitedUsec, audit: audit)
            try startQueued(ticket, plan, waiting, waitedUsec: waitedUsec, audit: audit)
            return (waiting.executionID, waiting.createdAtMs, plan)
        case .left(let error, let cause):
            endQueued(waiting.executionID, reason: error.message)
            refusals.recordCoalesced(
                QueueRecords.cancelled(plan, waiting, cause: cause, reason: error, waitedUsec: waitedUsec),
                caller: plan.caller, audit: audit)
            throw error
        }
    }

    /// The `queued` history row of a waiter: a new one, or an approved request's own row (its approval is spent
    /// at its turn, `spend`; one the policy in force would not let start now ends here).
    private func recordQueued(
        _ plan: ExecPlan, _ waiting: WaitRequest, approval: ApprovalTicket?
    ) async throws(RunvoyError) {
        if let approval {
            try await approvals.fulfil(approval, plan, .queue)
            return
        }
        do throws(StoreError) {
            try store.insert(
                plan.historyRow(id: waiting.executionID, status: .queued, createdAtMs: waiting.createdAtMs))
        } catch {
            throw RunvoyError(
                .storeUnavailable, "cannot record the execution in the history (\(error.message)); nothing was run")
        }
    }

    /// A waiter's turn came: it is decided again under the configuration in force now, as every execution is
    /// decided when it starts (a reload or a grant's end while it waited may have taken the caller's access away or
    /// changed the command's rules). A reload re-plans every waiter's `concurrency` and locks (`limitsChanged`), so it was
    /// admitted with those of the configuration in force; should they differ still (a reload between its start
    /// and this), it leaves the queue without running and is told to start it again.
    private func redecided(
        _ plan: ExecPlan, _ params: ExecParams, _ ticket: UInt64, _ waiting: WaitRequest, waitedUsec: Int64,
        audit: AuditLog
    ) throws(RunvoyError) -> ExecPlan {
        let (config, admitted) = state.withLock { ($0.config, $0.scheduler.running[ticket]) }
        // A change of temporary grants counts as a reload; a waiter whose caller held one is decided again in any
        // case, since a grant may have expired by the clock before its timer took it away.
        guard let current = config,
            current.digest != plan.config.digest || current.grantsDigest != plan.config.grantsDigest
                || plan.config.grants.contains(where: { $0.uid == plan.caller.uid })
        else { return plan }
        do throws(ExecRefusal) {
            let fresh = try ExecPlan.make(
                params, requestID: plan.requestID, caller: plan.caller, config: current, step: plan.playbookStep)
            if let why = plan.playbookStep?.staleness(caller: plan.caller, in: current) {
                throw fresh.refusal(RunvoyError(.cancelled, why))
            }
            guard fresh.executor.name == plan.executor.name, fresh.lockClaims == admitted?.locks,
                fresh.executor.concurrency == admitted?.concurrency
            else {
                throw fresh.refusal(
                    RunvoyError(
                        .cancelled,
                        "executor '\(plan.executor.name)' changed (its concurrency or locks) while execution \(waiting.executionID) waited in the queue; it did not run: start it again"
                    ))
            }
            // Its share is judged again with the roles its user holds now: one started as an administrator's
            // just before a reload took the role away does not run beyond its user's share.
            if let denial = shareDenial(ticket, caller: plan.caller, config: current) {
                throw fresh.refusal(
                    RunvoyError(
                        .cancelled,
                        "your roles changed while execution \(waiting.executionID) waited in the queue: \(Self.busy(denial).message); it did not run: start it again"
                    ))
            }
            return fresh
        } catch {
            release(ticket, plan.config)
            endQueued(waiting.executionID, reason: error.error.message)
            refusals.recordCoalesced(
                QueueRecords.cancelled(plan, waiting, cause: "policy", reason: error.error, waitedUsec: waitedUsec),
                caller: plan.caller, audit: audit)
            throw deny(error, caller: plan.caller, config: current)
        }
    }

    /// A waiter's turn came with the plan decided again (`redecided`): one that needs approval starts only with a
    /// ticket for exactly this plan (its digest) that the policy in force still honours: the same check as a start
    /// that does not wait (`Approvals.fulfil`), which spends the approval, or ends the request `invalidated` (review 2
    /// of approvals, F1: a reload while it waited may ask for more approvals, or take break-glass away). Otherwise
    /// it leaves without running.
    private func spend(
        _ approval: ApprovalTicket?, _ plan: ExecPlan, _ ticket: UInt64, _ waiting: WaitRequest, waitedUsec: Int64,
        audit: AuditLog
    ) async throws(RunvoyError) {
        if let refusal = Self.approvalRefusal(plan, approval) {
            release(ticket, plan.config)
            endQueued(waiting.executionID, reason: refusal.message)
            throw deny(plan.refusal(refusal), caller: plan.caller, config: plan.config)
        }
        guard let approval else { return }
        do throws(RunvoyError) {
            try await approvals.fulfil(approval, plan, .turn)
        } catch {
            release(ticket, plan.config)
            endQueued(waiting.executionID, reason: error.message)
            refusals.recordCoalesced(
                QueueRecords.cancelled(plan, waiting, cause: "policy", reason: error, waitedUsec: waitedUsec),
                caller: plan.caller, audit: audit)
            throw error
        }
    }

    /// Whether the running `ticket` exceeds its user's share under `config` (judged with the roles the user
    /// holds there), counting the others it runs; nil when it fits or its share class did not change.
    private func shareDenial(_ ticket: UInt64, caller: Caller, config: DaemonConfig) -> FairShares.Denial? {
        let holder = FairShares.Holder(roles: Authorizer.roles(caller, config))
        return state.withLock { state in
            guard let admitted = state.scheduler.running[ticket], admitted.holder != holder else { return nil }
            return state.scheduler.shareDenial(ofRunning: ticket, as: holder, within: .executions(config.limits))
        }
    }

    /// A waiter's turn came: its row becomes `running` (unless the disk is below its reserve now).
    private func startQueued(
        _ ticket: UInt64, _ plan: ExecPlan, _ waiting: WaitRequest, waitedUsec: Int64, audit: AuditLog
    ) throws(RunvoyError) {
        do throws(ExecRefusal) {
            try checkFreeSpace(plan, ticket: ticket)
        } catch {
            endQueued(waiting.executionID, reason: error.error.message, status: .failed)
            throw deny(error, caller: plan.caller, config: plan.config)
        }
        let dequeued: Bool
        do throws(StoreError) {
            dequeued = try store.dequeue(waiting.executionID)
        } catch {
            release(ticket, plan.config)
            let told = RunvoyError(
                .storeUnavailable, "cannot record the execution's start (\(error.message)); it did not run")
            endQueued(waiting.executionID, reason: told.message, status: .failed)
            throw told
        }
        guard dequeued else {
            // Its row is no longer `queued` (its client went away, or it was ended elsewhere): it never runs.
            release(ticket, plan.config)
            let gone = RunvoyError(
                .cancelled, "execution \(waiting.executionID) no longer waits in the queue; it did not run")
            refusals.recordCoalesced(
                QueueRecords.cancelled(plan, waiting, cause: "not_queued", reason: gone, waitedUsec: waitedUsec),
                caller: plan.caller, audit: audit)
            throw gone
        }
        audit.recordBestEffort(QueueRecords.dequeued(plan, waiting, waitedUsec: waitedUsec))
        DaemonMetrics.shared.dequeued(after: .microseconds(waitedUsec))
    }

    /// Ends a queued row that never ran.
    private func endQueued(_ id: String, reason: String, status: ExecutionStatus = .cancelled) {
        var outcome = ExecutionStore.Outcome.notStarted(reason: reason)
        outcome.status = status
        do throws(StoreError) {
            try store.finish(id, outcome)
        } catch {
            logger.error(
                "cannot record the end of a queued execution", metadata: ["execution": "\(id)", "error": "\(error)"])
        }
    }

    /// Returns once `ticket`'s wait has ended.
    func turn(_ ticket: UInt64) async -> WaitingRoom.Turn {
        await withCheckedContinuation { continuation in
            if let turn = state.withLock({ $0.room.await(ticket, continuation) }) {
                continuation.resume(returning: turn)
            }
        }
    }

    /// While `ticket` waits: its client hears of the changes of its place (`QueueTicker`), and it leaves the
    /// queue when its client goes or its wait timeout passes. Returns what stops all that.
    func watch(
        _ ticket: UInt64, _ waiting: WaitRequest, _ requestID: RequestID?, client: QueueClient?, first: QueuedEvent?
    ) -> @Sendable () -> Void {
        let unhook = client?.onHangup { [self] in leave(ticket, Self.clientGone, cause: "client_gone") }
        let timer = waiting.timeout.map { timeout in
            group.any().scheduleTask(in: TimeAmount(timeout)) { [self] in
                let error = RunvoyError(
                    .queueTimeout,
                    "execution \(waiting.executionID) waited \(Self.describe(timeout)) in the queue (its wait timeout) and did not run"
                )
                leave(ticket, error, cause: "wait_timeout")
            }
        }
        if let client { tell(ticket, client, requestID, first: first) }
        return { [self] in
            unhook?()
            timer?.cancel()
            _ = state.withLock { $0.tellers.removeValue(forKey: ticket) }
        }
    }

    static var clientGone: RunvoyError {
        RunvoyError(.cancelled, "the client went away while the execution waited in the queue")
    }

    /// Where `ticket` stands, or nil once its wait has ended.
    func queueEvent(_ ticket: UInt64, _ requestID: RequestID?, _ state: inout State) -> QueuedEvent? {
        guard let waiter = state.room.waiters[ticket], let position = state.room.position(ticket),
            let request = state.scheduler.request(waiting: ticket)
        else { return nil }
        let (waitingFor, limit, holders) = Self.waitingFor(request, state.scheduler, state.limits, state)
        let now = WallClock.milliseconds()
        // Another user's execution is named only to who may see it (as in `status` and `list`).
        let config = state.config ?? waiter.config
        let mayView = { (uid: uid_t) -> Bool in
            guard let caller = waiter.caller, let config else { return false }
            return Authorizer.mayView(caller, ownerUid: uid, config)
        }
        let shown = holders.sorted { ($0.sinceMs, $0.id) < ($1.sinceMs, $1.id) }.prefix(3).map {
            let visible = mayView($0.caller.uid)
            return QueueHolder(
                executionId: visible ? $0.id : nil, user: visible ? $0.caller.displayName : nil,
                runningMs: max(0, now - $0.sinceMs))
        }
        return QueuedEvent(
            id: requestID, executionId: waiter.executionID, executor: waiter.executor, position: position,
            waitingFor: waitingFor, limit: limit, holders: Array(shown), waitedMs: max(0, now - waiter.queuedAtMs))
    }

    /// Who holds what a waiter waits for: a running execution (its id), or a playbook run holding its locks
    /// (its run id).
    struct QueueHolding {
        let id: String
        let caller: Caller
        let sinceMs: Int64

        init(_ execution: Execution) {
            (id, caller, sinceMs) = (execution.id, execution.caller, execution.startedAtMs)
        }

        init(_ run: RunHold, since: Int64) {
            (id, caller, sinceMs) = (run.runID, run.caller, since)
        }
    }

    /// What `request` (a waiter) waits for, as its `queued` events say it: the `waiting_for`, the limit that is
    /// full, and who holds it (running executions, and for a lock the playbook runs that hold it too).
    private static func waitingFor(
        _ request: AdmissionScheduler<UInt64>.Request, _ scheduler: AdmissionScheduler<UInt64>,
        _ limits: FairShares.Limits, _ state: borrowing State
    ) -> (String, Int?, [QueueHolding]) {
        let running = state.running.values.map(QueueHolding.init)
        switch scheduler.blocker(of: request, within: limits) {
        case .share(.full(let total)), .share(.reserved(let total, _)):
            return ("executions", total, running)
        case .share(.userShare(let share)):
            return ("user_share", share, running.filter { $0.caller.uid == request.uid })
        case .concurrency(let concurrency):
            let here = state.running.values.filter { $0.executorName == request.executor }
            return ("concurrency", concurrency, here.map(QueueHolding.init))
        case .lock, .lockWaiter:
            let held = heldLocks(request.locks, scheduler) ?? []
            let executions = byTicket(running: state.running, tickets: state.tickets)
            let holders = held.compactMap { ticket -> QueueHolding? in
                if let execution = executions[ticket] { return QueueHolding(execution) }
                guard let run = state.runHolds[ticket], let since = run.sinceMs else { return nil }
                return QueueHolding(run, since: since)
            }
            return ("lock", nil, holders)
        case .earlier, nil:
            return ("turn", nil, [])
        }
    }

    static func describe(_ duration: Duration) -> String {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }
}
