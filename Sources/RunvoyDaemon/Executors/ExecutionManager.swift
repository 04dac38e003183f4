import Logging
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import ServiceLifecycle

/// Takes `exec` requests through their steps (plan, admission, launch) and keeps the executions that run: it
/// registers each one, runs it in its task group, unregisters it when it ends, and at shutdown stops admitting
/// and waits for the group. As a service it owns that group; it must come before the server in the service group,
/// which shuts down first and calls `shutdown`.
final class ExecutionManager: Service, Sendable {
    /// Where the manager is in its life.
    enum Phase {
        /// Admitting executions.
        case serving
        /// Shutting down: nothing more is admitted; what runs has the shutdown grace to end.
        case draining
        /// The grace is over: what runs, and what was still being launched, is terminated.
        case terminating
        /// `run` has returned: every execution has ended.
        case ended
    }

    struct State: ~Copyable {
        var phase = Phase.serving
        var running: [String: Execution] = [:]
        /// Admitted and being launched: not running yet, but the group must not end before they are.
        var launching = 0
        /// Who runs and launches what: the fair shares, executors' concurrency. Every admitted plan holds a ticket
        /// in it until its execution ends or its launch fails.
        var scheduler = AdmissionScheduler<UInt64>()
        var nextTicket: UInt64 = 0
        /// The ticket each running execution holds, by execution id.
        var tickets: [String: UInt64] = [:]
        /// The executions that wait in the scheduler's queue, as their requests see them.
        var room = WaitingRoom()
        /// The playbook runs that hold (or wait for) their playbooks' locks, by ticket (`ExecutionManager+RunLocks`).
        var runHolds: [UInt64: RunHold] = [:]
        /// The limits of the configuration in force (`limitsChanged`; without it, of the latest request), for
        /// what starts when something ends or leaves.
        var limits = FairShares.Limits.unlimited
        var limitsObserved = false
        /// The configuration in force (`limitsChanged`): a waiter is decided again under it when its turn comes.
        var config: DaemonConfig?
        /// The waiters' clients, told of their places by one ticker (`ExecutionManager+QueueTicker`).
        var tellers: [UInt64: QueueTeller] = [:]
        var ticker: RepeatedTask?
        var ticks: UInt64 = 0
        var started = 0
        /// Who waits for nothing to run or be launched any more (`shutdown`).
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        /// Who waits, for a bounded time, for `run` to return (every execution's `exit` event out).
        var endWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextEndWaiter = 0
        /// Who waits for an execution's admission to be given back (`admissionReturned`), by execution id.
        var admissionWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]

        /// Shutting down, with nothing running or being launched: no execution can come any more.
        var isIdle: Bool { phase != .serving && running.isEmpty && launching == 0 }
    }

    let state = Mutex(State())
    /// Executions to run in the group, in the order they started.
    private let queue = AsyncStream<Execution>.makeStream()
    let group: any EventLoopGroup
    let logger: Logger
    let launcher: ExecLaunch
    /// Called whenever the number of running executions changes (for sd_notify STATUS=).
    private let onChange: @Sendable (Int) -> Void
    /// How long output is still read after a command exited while something else holds its pipes.
    let drainGrace: Duration
    /// Bounds the refusal records one user can write.
    let refusals: RefusalThrottle
    /// The rate limits' buckets (requests: `Router`; executions: `admit`).
    let rates = RateLimiter()
    /// Requests that wait for approval before they start.
    let approvals: Approvals

    /// The durable history every execution is recorded in, with its output.
    var store: ExecutionStore { launcher.store }
    /// The secrets executors inject.
    var secrets: SecretStore { launcher.secrets }
    /// What confines executions' processes.
    var containment: any Containment { launcher.containment }
    /// Transient units for sandboxed executors, where the daemon offers them.
    var units: UnitContainment? { launcher.units }

    init(
        group: any EventLoopGroup, logger: Logger, store: ExecutionStore, secrets: SecretStore,
        refusals: RefusalThrottle, spawner: any ProcessSpawner = PosixSpawner(), journal: Journal = .shared,
        drainGrace: Duration = .seconds(2), containment: any Containment = ProcessGroupContainment(),
        units: UnitContainment? = nil, onChange: @escaping @Sendable (Int) -> Void
    ) {
        self.refusals = refusals
        self.group = group
        self.logger = logger
        self.launcher = ExecLaunch(
            store: store, secrets: secrets, spawner: spawner, group: group, logger: logger, journal: journal,
            containment: containment, units: units)
        self.drainGrace = drainGrace
        self.onChange = onChange
        self.approvals = Approvals(store: store, logger: logger, journal: journal, group: group)
        approvals.setLauncher { [unowned self] ticket, config in await startApproved(ticket, config: config) }
    }

    var runningCount: Int { state.withLock { $0.running.count } }

    /// A consistent view of admission for reports (`locks`): the scheduler, the running executions by the
    /// ticket they hold (an admitted plan still being launched has none yet), and the playbook runs that hold or
    /// wait for their playbooks' locks.
    func admissionSnapshot() -> (
        scheduler: AdmissionScheduler<UInt64>, executions: [UInt64: Execution], runHolds: [UInt64: RunHold]
    ) {
        state.withLock { state in
            (state.scheduler, Self.byTicket(running: state.running, tickets: state.tickets), state.runHolds)
        }
    }

    /// A running execution by id.
    func running(id: String) -> Execution? { state.withLock { $0.running[id] } }

    /// Every execution running now.
    var runningExecutions: [Execution] { state.withLock { Array($0.running.values) } }
    var startedCount: Int { state.withLock { $0.started } }

    /// Plans, admits and launches `params` for `caller`. Every refusal is audited and thrown as a wire error.
    /// `onStarted` runs after the command is allowed, audited and spawned, before it runs and before any output.
    /// With `params.wait`, what cannot start now waits in the queue (see `ExecutionManager+Queue`), telling
    /// `client` where it stands. A plan that needs approval starts only with the `approval` ticket of that very
    /// plan (its digest); it then waits in the queue rather than be refused, so that a busy executor does not
    /// waste an approval.
    func start(
        _ params: ExecParams, requestID: RequestID?, caller: Caller, config: DaemonConfig, sink: (any OutputSink)?,
        client: QueueClient? = nil, approval: ApprovalTicket? = nil, step: PlaybookStepContext? = nil,
        onStarted: @Sendable (Execution) async throws -> Void
    ) async throws(RunvoyError) -> Execution {
        do throws(RunvoyError) {
            return try await startPlanned(
                params, requestID: requestID, caller: caller, config: config, sink: sink, client: client,
                approval: approval, step: step, onStarted: onStarted)
        } catch {
            // An approval it could not spend ends here, never left approved for the next daemon to launch (review
            // of approvals, L1); nothing when it was spent (its execution then ended as launches do).
            if let approval { await approvals.unspent(approval, error, config: config) }
            throw error
        }
    }

    private func startPlanned(
        _ params: ExecParams, requestID: RequestID?, caller: Caller, config: DaemonConfig, sink: (any OutputSink)?,
        client: QueueClient?, approval: ApprovalTicket?, step: PlaybookStepContext?,
        onStarted: @Sendable (Execution) async throws -> Void
    ) async throws(RunvoyError) -> Execution {
        let began = ContinuousClock.now
        // Who follows its request (`logs -f`) goes on to its output once it started, or failed to.
        defer { if let approval { approvals.settle(approval.id) } }
        let decided: ExecPlan
        let admission: Admission
        do throws(ExecRefusal) {
            decided = try ExecPlan.make(params, requestID: requestID, caller: caller, config: config, step: step)
            if let refusal = Self.approvalRefusal(decided, approval) { throw decided.refusal(refusal) }
            admission = try admit(decided, waiting: try Self.waitRequest(params, decided, approval: approval))
        } catch {
            throw deny(error, caller: caller, config: config)
        }
        let ticket = admission.ticket
        let queued = try await waitIfQueued(admission, decided, params: params, client: client, approval: approval)
        var plan = queued?.plan ?? decided
        plan.auditFields += approval?.auditFields ?? []
        let existing = try await startApproval(approval, plan, queued: queued, ticket: ticket)
        let launched: ExecLaunch.Launched
        do throws(LaunchFailure) {
            launched = try await launcher.launch(plan, queued: existing)
        } catch {
            release(ticket, plan.config)
            if error.isDenial { throw deny(plan.refusal(error.error), caller: caller, config: config) }
            throw error.error
        }
        let execution = Execution(plan: plan, launched: launched, sink: sink, admitted: .init(approval))
        register(execution, ticket: ticket, plan: plan)
        DaemonMetrics.shared.executionStarted(
            executor: plan.executor.name, user: caller.displayName, latency: .now - began)
        // It runs (its timeout too) whether or not the client takes its `started` event; its output waits for that.
        if case .terminated = queue.continuation.yield(execution) {
            logger.error("an execution started after the execution manager stopped; killing it")
            execution.terminate()
        }
        do {
            try await onStarted(execution)
        } catch {
            execution.clientGone()
        }
        execution.releaseOutput()
        return execution
    }

    /// Why `plan` may not start with `approval`: it needs approval and has no ticket for exactly this plan.
    static func approvalRefusal(_ plan: ExecPlan, _ approval: ApprovalTicket?) -> RunvoyError? {
        guard let policy = plan.decision.approval else { return nil }
        if let approval, approval.digest == ApprovalSubject(plan, reason: plan.reason ?? "").digest { return nil }
        return RunvoyError(
            .permissionDenied,
            "executor '\(plan.executor.name)' \(policy.display) for this command"
                + (approval == nil ? "" : "; what would run now is not what was approved"))
    }

    /// The row an approved (or break-glass) plan that starts at once launches onto, its ticket spent; else the
    /// row of a plan that waited in the queue, if any.
    private func startApproval(
        _ approval: ApprovalTicket?, _ plan: ExecPlan, queued: (id: String, createdAtMs: Int64, plan: ExecPlan)?,
        ticket: UInt64
    ) async throws(RunvoyError) -> (id: String, createdAtMs: Int64)? {
        if let queued { return (queued.id, queued.createdAtMs) }
        guard let approval else { return nil }
        do throws(RunvoyError) {
            try await approvals.fulfil(approval, plan, .start)
        } catch {
            release(ticket, plan.config)
            throw error
        }
        return (approval.id, approval.record.createdAtMs)
    }

    /// Starts an approved request no client waits for, as its requester, under `config` (decided again there).
    func startApproved(_ ticket: ApprovalTicket, config: DaemonConfig) async {
        // Approved, it waited in the queue when the previous daemon stopped: its row ended with that daemon.
        if let row = try? store.get(ticket.id), row.status != .awaitingApproval {
            await approvals.withdraw(
                ticket.id, reason: "its execution ended (\(row.status.rawValue)) before it started", config: config)
            return
        }
        guard var params = ExecutionStore.decode(ExecParams.self, ticket.record.params) else {
            await approvals.withdraw(ticket.id, reason: "its parameters cannot be read", config: config)
            return
        }
        params.wait = true
        params.detach = true
        params.stdin = false
        let caller = Caller.lookup(uid: ticket.record.requesterUid)
        do {
            _ = try await start(
                params, requestID: nil, caller: caller, config: config, sink: nil, approval: ticket
            ) { _ in }
        } catch {
            logger.warning(
                "an approved request did not start", metadata: ["execution": "\(ticket.id)", "error": "\(error)"])
            await approvals.withdraw(ticket.id, reason: error.message, config: config)
        }
    }

    /// Records a refusal (within the caller's bound) and gives the wire error.
    func deny(_ refusal: ExecRefusal, caller: Caller, config: DaemonConfig) -> RunvoyError {
        let audit = AuditLog(config.audit, logger: logger, journal: launcher.journal)
        if refusal.error.code == .rateLimited {
            refusals.recordRateLimited(
                RateLimiter.record(refusal.error, caller: caller, method: "exec", executor: refusal.executorName),
                caller: caller, audit: audit)
            return refusal.error
        }
        let hasRole = !Authorizer.roles(caller, config).isEmpty
        DaemonMetrics.shared.refused(refusal.error.code)
        // A denial stands whether or not its record is written.
        refusals.record(
            refusal.record(caller: caller, hasRole: hasRole), caller: caller, hasRole: hasRole, audit: audit)
        return refusal.error
    }

    // MARK: - Admission

    /// Whether `plan` may start now: not while shutting down, nor beyond the caller's fair share of running
    /// executions (the ceiling, the administrators' reserve, the caller's own share) or its executor's
    /// `concurrency`, nor when the state directory is nearly full (a reserve of free space keeps room for running
    /// executions' output and ends: new ones are refused first). An admitted plan holds a launch slot and a ticket
    /// of the scheduler until `register` or `release`. With `waiting`, what cannot start now waits in the queue
    /// under that id instead of being refused.
    func admit(_ plan: ExecPlan, waiting: WaitRequest? = nil) throws(ExecRefusal) -> Admission {
        let metered: [RateBuckets.Key]
        switch rates.takeExecution(caller: plan.caller, executor: plan.executor, config: plan.config) {
        case .success(let keys): metered = keys
        case .failure(let limited): throw plan.refusal(limited)
        }
        let limits = FairShares.Limits.executions(plan.config.limits)
        let refusal = state.withLock { state -> Result<Admission, RunvoyError> in
            guard case .serving = state.phase else { return .failure(RunvoyError(.busy, "runvoyd is shutting down")) }
            if !state.limitsObserved { state.limits = limits }
            state.nextTicket += 1
            let request = AdmissionScheduler<UInt64>.Request(
                id: state.nextTicket, uid: plan.caller.uid,
                holder: FairShares.Holder(roles: Authorizer.roles(plan.caller, plan.config)),
                executor: plan.executor.name, concurrency: plan.executor.concurrency, locks: plan.lockClaims,
                inRunHold: !(plan.playbookStep?.locks.isEmpty ?? true),
                line: plan.playbookStep.map { "run:" + $0.runID })
            let started = state.scheduler.arrive(request, within: limits)
            began(started.filter { $0 != request.id }, &state)
            guard started.contains(request.id) else {
                if let waiting {
                    queue(request, plan, waiting, &state)
                    return .success(Admission(ticket: request.id, waiting: waiting))
                }
                let error = Self.busy(
                    request, state.scheduler, limits, running: state.running, tickets: state.tickets,
                    runHolds: state.runHolds, mayView: { Authorizer.mayView(plan.caller, ownerUid: $0, plan.config) })
                began(state.scheduler.cancel(request.id, within: limits) ?? [], &state)
                return .failure(error)
            }
            state.launching += 1
            return .success(Admission(ticket: request.id, waiting: nil))
        }
        let admission: Admission
        switch refusal {
        case .success(let admitted): admission = admitted
        case .failure(let error):
            rates.refund(metered)
            throw plan.refusal(error)
        }
        // A waiter's free space is checked when its turn comes.
        if admission.waiting == nil { try checkFreeSpace(plan, ticket: admission.ticket) }
        return admission
    }

    /// Refuses `plan` (releasing its admitted `ticket`) when the state directory is below its free-space reserve.
    func checkFreeSpace(_ plan: ExecPlan, ticket: UInt64) throws(ExecRefusal) {
        let reserve = plan.config.history.minFreeBytes
        if reserve > 0, let free = store.freeBytes, free < reserve {
            release(ticket, plan.config)
            logger.warning(
                "refusing executions: the state directory is nearly full",
                metadata: ["free_bytes": "\(free)", "min_free_bytes": "\(reserve)"])
            throw plan.refusal(
                RunvoyError(
                    .storeUnavailable,
                    "the execution history is nearly out of space (\(free >> 20) MiB free, below the reserve of \(reserve >> 20) MiB); nothing was run"
                ))
        }
    }

    /// Why `request` cannot start now: the caller's share, else its executor's concurrency (naming who runs
    /// there), else a lock it needs (naming who holds it), else an earlier execution of the same caller that
    /// wants the same, else an earlier waiter that needs one of its locks alone. Another user's execution is named
    /// (id, user, executor) only where `mayView` says the caller may see that user's executions, as in `locks`.
    static func busy(
        _ request: AdmissionScheduler<UInt64>.Request, _ scheduler: AdmissionScheduler<UInt64>,
        _ limits: FairShares.Limits, running: [String: Execution], tickets: [String: UInt64],
        runHolds: [UInt64: RunHold] = [:], mayView: (uid_t) -> Bool
    ) -> RunvoyError {
        switch scheduler.blocker(of: request, within: limits) {
        case .share(let denial):
            return busy(denial)
        case .concurrency(let concurrency):
            let holders = running.values.filter { $0.executorName == request.executor }.map {
                mayView($0.caller.uid) ? "\($0.id) by \($0.caller.displayName)" : "another user's execution"
            }
            return RunvoyError(
                .busy,
                "executor '\(request.executor)' is running its limit of \(concurrency) (concurrency): "
                    + (holders.isEmpty ? "executions being started" : holders.sorted().joined(separator: ", ")))
        case .lock:
            return lockBusy(
                request, scheduler, running: running, tickets: tickets, runHolds: runHolds, mayView: mayView)
                ?? RunvoyError(.busy, "a lock executor '\(request.executor)' needs is held")
        case .earlier:
            return RunvoyError(
                .busy,
                "an earlier execution of yours waits in the queue for executor '\(request.executor)' or one of its locks, and goes first"
            )
        case .lockWaiter(let name):
            return RunvoyError(
                .busy,
                "lock '\(name)' (needed shared by executor '\(request.executor)') is wanted exclusively by an execution that waits in the queue, and goes first"
            )
        case nil:
            return RunvoyError(.busy, "executor '\(request.executor)' cannot start it now")
        }
    }

    /// What an execution refused by the fair shares is told.
    static func busy(_ denial: FairShares.Denial) -> RunvoyError {
        switch denial {
        case .full(let limit):
            return RunvoyError(.busy, "runvoyd is at its limit of \(limit) running executions")
        case .reserved(let limit, let reserved):
            return RunvoyError(
                .busy,
                "runvoyd is at its limit of \(limit) running executions (the last \(reserved) are kept for administrators)"
            )
        case .userShare(let limit):
            return RunvoyError(
                .busy,
                "you have \(limit) running executions, the most one user may (limits.max_executions_per_user); wait for one to end"
            )
        }
    }

    // MARK: - Registry

    /// `plan` is what it was launched from: when that gave its user a temporary grant, it is decided again under
    /// the configuration in force once it is running (review 2 of grants, R1: `grants.end_running` lists the
    /// running executions under the same lock, so a grant that ended while it launched is seen by one or the
    /// other).
    private func register(_ execution: Execution, ticket: UInt64, plan: ExecPlan) {
        execution.armTimeout()
        let (count, late, current) = state.withLock { state -> (Int, Bool, DaemonConfig?) in
            state.launching -= 1
            state.tickets[execution.id] = ticket
            state.running[execution.id] = execution
            state.started += 1
            return (state.running.count, state.phase == .terminating, state.config)
        }
        onChange(count)
        // Launched while shutting down, after the grace: it goes the way of the others.
        if late { execution.terminate() }
        if let current, plan.config.grants.contains(where: { $0.uid == execution.caller.uid }),
            Grants.endLate(
                execution, planned: plan.config, current: current,
                audit: AuditLog(current.audit, logger: logger, journal: launcher.journal))
        {
            logger.notice(
                "terminated an execution whose grant ended while it was launched",
                metadata: ["execution": "\(execution.id)"])
        }
    }

    /// An admitted launch failed: its slot and its ticket are free again.
    func release(_ ticket: UInt64, _ config: DaemonConfig) {
        state.withLock { state in
            state.launching -= 1
            began(state.scheduler.finish(ticket, within: state.limits), &state)
            closeQueueIfDone(&state)
        }
    }

    /// The execution has ended. Its admission (slot, locks, fair share) is given back now, or, when it has
    /// `post_exec` hooks, once they have ended (`finished`), so that they are bounded as executions are (review of
    /// hooks, H3).
    private func unregister(_ execution: Execution) {
        let (count, waiters) = state.withLock { state -> (Int, [CheckedContinuation<Void, Never>]) in
            state.running.removeValue(forKey: execution.id)
            var waiters: [CheckedContinuation<Void, Never>] = []
            if execution.postExec == nil {
                waiters = giveBackAdmission(of: execution.id, &state)
            }
            closeQueueIfDone(&state)
            return (state.running.count, waiters)
        }
        for waiter in waiters { waiter.resume() }
        onChange(count)
    }

    /// The ended execution's `post_exec` hooks have ended: its admission is given back.
    private func finished(_ execution: Execution) {
        let waiters = state.withLock { giveBackAdmission(of: execution.id, &$0) }
        for waiter in waiters { waiter.resume() }
    }

    /// Gives back the admission of `id`; returns who waited for that, to resume once the lock is let go.
    private func giveBackAdmission(of id: String, _ state: inout State) -> [CheckedContinuation<Void, Never>] {
        if let ticket = state.tickets.removeValue(forKey: id) {
            began(state.scheduler.finish(ticket, within: state.limits), &state)
        }
        return state.admissionWaiters.removeValue(forKey: id) ?? []
    }

    /// Suspends until `execution`'s admission (its slot, locks and share) has been given back: once it has ended
    /// and its `post_exec` hooks have (a playbook run keeps its locks until then, review 3, R3-M1). At once when it
    /// holds none any more, or the manager has stopped running executions.
    func admissionReturned(_ execution: Execution) async {
        await withCheckedContinuation { continuation in
            let waits = state.withLock { state -> Bool in
                guard state.tickets[execution.id] != nil, state.phase != .ended else { return false }
                state.admissionWaiters[execution.id, default: []].append(continuation)
                return true
            }
            if !waits { continuation.resume() }
        }
    }

    /// Once shutting down with nothing running or launching, no execution can come any more: the group may end,
    /// and `shutdown` returns. (Not when the group has ended: an execution's last step, its `exit` event, may wait
    /// on a client that does not read, and only the server's end of that connection, after `shutdown`, ends it.)
    func closeQueueIfDone(_ state: inout State) {
        guard state.isIdle else { return }
        queue.continuation.finish()
        let waiters = state.idleWaiters
        state.idleWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    // MARK: - Service

    /// Runs every execution in one task group until shutdown has let them all end, then waits for its turn in the
    /// service group's shutdown. Cancelled (the daemon failed), it terminates what still runs and waits for it.
    func run() async throws {
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for await execution in queue.stream {
                    group.addTask {
                        await execution.run(drainGrace: self.drainGrace) { self.unregister($0) }
                        await self.runPostExecHooks(execution)
                        self.finished(execution)
                    }
                }
            }
        } onCancel: {
            for execution in state.withLock({ Array($0.running.values) }) { execution.terminate() }
        }
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.phase = .ended
            defer {
                state.idleWaiters = []
                state.endWaiters = [:]
                state.admissionWaiters = [:]
            }
            return state.idleWaiters + state.endWaiters.values + state.admissionWaiters.values.joined()
        }
        for waiter in waiters { waiter.resume() }
        try? await gracefulShutdown()
    }

    /// Stops admitting executions, lets running ones finish for `grace`, then terminates their process groups
    /// (SIGTERM, SIGKILL after each one's kill grace) and waits until none runs. Needs `run`.
    func shutdown(grace: Duration, killGrace: Duration) async {
        let count = state.withLock { state -> Int in
            if state.phase == .serving { state.phase = .draining }
            emptyQueue(&state)
            releaseAllRunLocks(&state)
            closeQueueIfDone(&state)
            return state.running.count
        }
        if count > 0 {
            logger.notice("waiting for running executions", metadata: ["count": "\(count)", "grace": "\(grace)"])
        }
        let deadline = ContinuousClock.now + grace
        let stragglers = group.any().scheduleTask(in: TimeAmount(grace)) { [self] in terminateStragglers() }
        await idle()
        // Their clients still get their `exit` events, but one that does not read cannot hold the daemon: after
        // `killGrace` the server closes the connections, which fails what still waits to be written. `post_exec`
        // hooks still running have the rest of the grace, then are killed (review of hooks, H3).
        let hooks = launcher.runningHooks.isEmpty ? Duration.zero : max(.zero, deadline - .now)
        await ended(within: hooks + killGrace)
        stragglers.cancel()
    }

    private func terminateStragglers() {
        let hooks = launcher.runningHooks.killAll()
        if hooks > 0 {
            logger.warning("killing hooks still running after the shutdown grace", metadata: ["count": "\(hooks)"])
        }
        let left = state.withLock { state -> [Execution] in
            if state.phase == .draining { state.phase = .terminating }
            return Array(state.running.values)
        }
        guard !left.isEmpty else { return }
        logger.warning(
            "terminating executions still running after the shutdown grace", metadata: ["count": "\(left.count)"])
        for execution in left { execution.terminate() }
    }

    /// Returns once `run` has returned, or after `bound`.
    private func ended(within bound: Duration) async {
        await withCheckedContinuation { continuation in
            let token = state.withLock { state -> Int? in
                if state.phase == .ended { return nil }
                state.nextEndWaiter += 1
                state.endWaiters[state.nextEndWaiter] = continuation
                return state.nextEndWaiter
            }
            guard let token else { return continuation.resume() }
            group.any().scheduleTask(in: TimeAmount(bound)) { [self] in
                state.withLock { $0.endWaiters.removeValue(forKey: token) }?.resume()
            }
        }
    }

    /// Returns once shutting down with no execution running or being launched (or once `run` has returned).
    private func idle() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.isIdle || state.phase == .ended { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
