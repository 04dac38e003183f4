import Logging
import NIOCore
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// Requests that wait for other people's approval before their command runs: made by `exec` (`Approvals+Gate`),
/// answered by `approve` and `deny`, ended by their deadline or their requester, recovered at start-up
/// (`Approvals+Recovery`). Every change goes through `ApprovalMachine` and is written to the state database in one
/// conditional transaction; waiting clients hear of it through the `ApprovalRoom`.
final class Approvals: Sendable {
    let store: ExecutionStore
    let logger: Logger
    let journal: Journal
    let group: any EventLoopGroup
    let room = Mutex(ApprovalRoom())
    private let timers = Mutex<[String: Scheduled<Void>]>([:])
    /// The changes waiting for their turn at each request being changed (`serially`).
    private let turns = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])
    /// Starts an approved request no client waits for (`ExecutionManager.startApproved`).
    private let launcher = Mutex<(@Sendable (ApprovalTicket, DaemonConfig) async -> Void)?>(nil)
    /// Makes the grant of an approved request for one no client waits for (`Grants.fulfil`).
    private let grantLauncher = Mutex<(@Sendable (ApprovalTicket, DaemonConfig) async -> Void)?>(nil)

    init(store: ExecutionStore, logger: Logger, journal: Journal, group: any EventLoopGroup) {
        self.store = store
        self.logger = logger
        self.journal = journal
        self.group = group
    }

    func setLauncher(_ launch: @escaping @Sendable (ApprovalTicket, DaemonConfig) async -> Void) {
        launcher.withLock { $0 = launch }
    }

    func setGrantLauncher(_ launch: @escaping @Sendable (ApprovalTicket, DaemonConfig) async -> Void) {
        grantLauncher.withLock { $0 = launch }
    }

    /// What starts `ticket` when no client waits for it: its command, or (kind `grant`) its grant. A playbook run
    /// (kind `playbook`) runs only on its client's connection: approved without it, it is withdrawn.
    func launcher(for ticket: ApprovalTicket) -> (@Sendable (ApprovalTicket, DaemonConfig) async -> Void)? {
        if ticket.record.kind == "playbook" {
            return { [self] ticket, config in
                _ = await withdraw(ticket.id, reason: "the client of its playbook run went away", config: config)
            }
        }
        return ticket.record.kind == "grant" ? grantLauncher.withLock { $0 } : launcher.withLock { $0 }
    }

    func audit(_ config: DaemonConfig) -> AuditLog {
        AuditLog(config.audit, logger: logger, journal: journal)
    }

    /// The request `id`, if `caller` may see it: its requester, who may answer it, or a holder of `view_all`.
    func visible(_ id: String, caller: Caller, config: DaemonConfig) throws(RunvoyError) -> ApprovalRecord {
        let record: ApprovalRecord?
        do throws(StoreError) {
            record = try store.approval(id)
        } catch {
            throw RunvoyError(.storeUnavailable, "cannot read the requests for approval (\(error.message))")
        }
        guard let record, Self.mayView(record, caller: caller, config: config) else {
            throw RunvoyError(.noSuchExecution, "no request for approval \(id)")
        }
        return record
    }

    /// What is wrong with a comment or reason: longer than 1024 bytes, or control characters in it.
    static func textRefusal(_ text: String?, what: String) -> RunvoyError? {
        guard let text else { return nil }
        guard text.utf8.count <= ExecPlan.maxReasonBytes else {
            return RunvoyError(.invalidArgument, "\(what) is at most \(ExecPlan.maxReasonBytes) bytes")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            return RunvoyError(.invalidArgument, "\(what) has no control characters (newlines, escapes)")
        }
        return nil
    }

    /// The configuration an answer to `record` is judged under: for a request for a grant, without the grants in
    /// force, so no one approves access with access that is itself temporary (a temporary administrator would pass
    /// it on to outlast their own; review 4 of grants).
    static func judging(_ record: ApprovalRecord, _ config: DaemonConfig) -> DaemonConfig {
        guard record.kind == "grant" else { return config }
        var standing = config
        standing.grants = []
        return standing
    }

    static func mayView(_ record: ApprovalRecord, caller: Caller, config: DaemonConfig) -> Bool {
        record.requesterUid == caller.uid || Authorizer.permits(caller, .viewAll, config)
            || Authorizer.mayApprove(caller, record.approvers, config)
    }

    /// Applies the event `make` builds (given the record as read and whether `caller` may answer it) and writes
    /// what it changed. An answer is audited before it counts, fail-closed: no record, nothing written. Changes of
    /// one request are made one at a time (`serially`), so the record of an answer says what was then stored (two
    /// approvers at once are counted 1 and 2, never both 1); what follows the change comes after. Whether the caller
    /// may answer is judged on its groups now, not when its connection was made (review 2 of approvals, L4).
    func change(
        _ id: String, caller connected: Caller, config: DaemonConfig, audited: Bool,
        _ make: (ApprovalRecord, Bool) -> ApprovalMachine.Event
    ) async throws(RunvoyError) -> ApprovalRecord {
        let caller = connected.refreshed
        let (new, result, wrote) = try await serially(id) { () async throws(RunvoyError) in
            let old = try visible(id, caller: caller, config: config)
            let eligible = Authorizer.mayApprove(caller, old.approvers, Self.judging(old, config))
            let (new, result) = ApprovalMachine.apply(make(old, eligible), to: old)
            if case .failure = result {
                // Refused; a request found expired on the way is written so.
                return (new, result, new.state != old.state && (try? store.updateApproval(new, from: old)) == true)
            }
            if audited, let answer = new.answers.last {
                try await audit(config).record(ApprovalRecords.answered(new, answer, caller: caller))
            }
            guard try write(new, from: old) else {
                throw RunvoyError(.conflict, "request \(id) changed while it was being answered; try again")
            }
            return (new, result, true)
        }
        switch result {
        case .success(let change):
            await applied(change, new, config: config)
            return new
        case .failure(let error):
            if wrote { await ended(new, cause: new.state.rawValue, config: config) }
            throw error
        }
    }

    /// Runs `body` alone among the changes of request `id` in this daemon (answers, deadlines, withdrawals,
    /// launches), in the order they came; the database's conditional writes still guard against any other writer.
    func serially<T>(_ id: String, _ body: () async throws(RunvoyError) -> T) async throws(RunvoyError) -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let free = turns.withLock { turns -> Bool in
                guard let waiting = turns[id] else {
                    turns[id] = []
                    return true
                }
                turns[id] = waiting + [continuation]
                return false
            }
            if free { continuation.resume() }
        }
        defer {
            let next = turns.withLock { turns -> CheckedContinuation<Void, Never>? in
                guard var waiting = turns[id], !waiting.isEmpty else {
                    turns[id] = nil
                    return nil
                }
                let first = waiting.removeFirst()
                turns[id] = waiting
                return first
            }
            next?.resume()
        }
        return try await body()
    }

    /// Writes `new` over `old`; false when `old` is no longer what the database holds.
    func write(
        _ new: ApprovalRecord, from old: ApprovalRecord, started: ExecutionStatus? = nil
    ) throws(RunvoyError)
        -> Bool
    {
        do throws(StoreError) {
            return try store.updateApproval(new, from: old, started: started)
        } catch {
            throw RunvoyError(.storeUnavailable, "cannot record the answer (\(error.message)); nothing changed")
        }
    }

    /// What follows a change: waiting clients hear of it; an approval starts the command (through the client
    /// that waits for it, else here); an end is audited and told.
    func applied(_ change: ApprovalMachine.Change, _ record: ApprovalRecord, config: DaemonConfig) async {
        switch change {
        case .answered:
            tell(record)
        case .approved:
            cancelTimer(record.id)
            audit(config).recordBestEffort(ApprovalRecords.decided(record, cause: "approved"))
            // Posted, never awaited (F3 of review 2): before the hand-over only so that the waiting client's
            // last `approval` event comes before its command's events.
            tell(record)
            let ticket = ApprovalTicket(record: record)
            if !room.withLock({ $0.end(record.id, .approved(ticket)) }), let launch = launcher(for: ticket) {
                Task { await launch(ticket, config) }
            }
        case .reviewed, .fulfilled:
            audit(config).recordBestEffort(
                ApprovalRecords.decided(record, cause: change == .reviewed ? "reviewed" : "launched"))
        case .denied, .expired, .withdrawn, .invalidated:
            await ended(record, cause: record.state.rawValue, config: config)
        }
    }

    /// A request ended without running: audited, its timer stopped, its waiting clients told.
    func ended(_ record: ApprovalRecord, cause: String, config: DaemonConfig) async {
        cancelTimer(record.id)
        audit(config).recordBestEffort(ApprovalRecords.decided(record, cause: cause))
        tell(record)
        room.withLock {
            _ = $0.end(record.id, .ended(Self.ending(record)))
            $0.settle(record.id)
        }
    }

    /// Request `id`'s command started, or failed to: who follows it (`logs -f`) goes on to its output.
    func settle(_ id: String) {
        room.withLock { $0.settle(id) }
    }

    /// Follows request `id` for `logs -f`: its `approval` events to `tell` until its command started (or failed
    /// to start) or it ended without running, or the client went (`hangup`). Returns at once for a request that
    /// is neither pending nor approved.
    func follow(
        _ id: String, requestID: RequestID?, hangup: Hangup, tell: @escaping @Sendable (ApprovalEvent) async -> Void
    ) async {
        let mailbox = ApprovalMailbox { record in await tell(Self.event(record, requestID: requestID)) }
        let token = room.withLock { $0.observe(id, mailbox: mailbox) }
        guard let current = try? store.approval(id), current.state == .pending || current.state == .approved else {
            room.withLock { $0.stopObserving(id, token) }
            return
        }
        mailbox.post(current)
        let undo = hangup.on { [self] in
            mailbox.close()
            room.withLock { $0.stopObserving(id, token) }
        }
        await withCheckedContinuation { continuation in
            if !room.withLock({ $0.awaitSettled(id, token, continuation) }) { continuation.resume() }
        }
        undo()
        // What it was told of the request comes before the command's output (only this follower waits for it).
        await mailbox.finish()
    }

    /// What the requester's client is told when its request ended without running.
    static func ending(_ record: ApprovalRecord) -> RunvoyError {
        let why = record.decision.map { ": \($0)" } ?? ""
        switch record.state {
        case .denied:
            return RunvoyError(
                .approvalDenied, "request \(record.id) was \(record.decision ?? "denied"); it did not run")
        case .expired:
            return RunvoyError(.approvalExpired, "request \(record.id) expired without its approvals; it did not run")
        default:
            return RunvoyError(.cancelled, "request \(record.id) was \(record.state.rawValue)\(why); it did not run")
        }
    }

    /// Leaves every watcher and follower of `record` its `approval` event, sent by each one's own mailbox: never
    /// waits for a client (review 2 of approvals, F3).
    func tell(_ record: ApprovalRecord) {
        // A change's record keeps the version it was read at; the database holds it at the next.
        var written = record
        written.version += 1
        for mailbox in room.withLock({ $0.mailboxes(record.id) }) { mailbox.post(written) }
    }

    // MARK: - Deadlines

    /// Expires `id` at its deadline.
    func scheduleExpiry(_ record: ApprovalRecord, config: DaemonConfig) {
        let delay = max(0, record.expiresAtMs - WallClock.milliseconds())
        let task = group.any().scheduleTask(in: .milliseconds(delay)) { [self] () -> Void in
            Task { await expire(record.id, config: config) }
        }
        timers.withLock { $0.updateValue(task, forKey: record.id) }?.cancel()
    }

    func cancelTimer(_ id: String) {
        timers.withLock { $0.removeValue(forKey: id) }?.cancel()
    }

    /// Ends `id` if it is pending and due (the timer; also at start-up). A timer that fired before the deadline
    /// (the wall clock was set back) finds it not yet due, and is set again for what is left (review of
    /// approvals, L2): otherwise it would stay pending until someone acted on it.
    func expire(_ id: String, config: DaemonConfig, atMs now: Int64 = WallClock.milliseconds()) async {
        await system(id, config: config, .expire(atMs: now))
        if let record = try? store.approval(id), record.state == .pending, now < record.expiresAtMs {
            scheduleExpiry(record, config: config)
        }
    }

    /// What becomes of `ticket` when its command could not start: an approved request is withdrawn (it would
    /// otherwise stay approved, and the next daemon launch it); a break-glass run that never started is no run to
    /// review. Nothing when the ticket was spent, or was never the request's approval.
    func unspent(_ ticket: ApprovalTicket, _ error: RunvoyError, config: DaemonConfig) async {
        let reason = "it could not start: \(error.message)"
        if ticket.isBreakGlass {
            abandon(ticket.id, reason: reason, config: config)
        } else if (try? store.approval(ticket.id))?.state == .approved {
            // Only an approved request: a ticket that was not its approval (refused by `start`) changes nothing.
            await withdraw(ticket.id, reason: reason, config: config)
        }
    }

    /// Ends request `id`, whose command never started, `withdrawn` with its history row `cancelled` (one
    /// transaction): its audit record could not be written, the daemon stopped before it was, a break-glass run
    /// could not start or was cancelled before it did. Nothing (false) when its command started. Its
    /// `approval_decided` record (`CAUSE=abandoned`) is best-effort: a failing journal is often what got it here
    /// (review 2 of approvals, L2).
    @discardableResult
    func abandon(_ id: String, reason: String, config: DaemonConfig) -> Bool {
        cancelTimer(id)
        var abandoned = false
        do throws(StoreError) {
            abandoned = try store.abandonApproval(id, reason: reason, atMs: WallClock.milliseconds())
        } catch {
            logger.error("cannot end a request for approval", metadata: ["id": "\(id)", "error": "\(error)"])
        }
        if abandoned {
            logger.notice(
                "a request for approval ended without running", metadata: ["id": "\(id)", "reason": "\(reason)"])
            if let record = try? store.approval(id) {
                audit(config).recordBestEffort(ApprovalRecords.decided(record, cause: "abandoned"))
            }
        }
        room.withLock { $0.settle(id) }
        return abandoned
    }

    /// Its requester withdrew it, or its client (which it needs) went. Whether it was withdrawn (false: it was
    /// neither pending nor approved).
    @discardableResult
    func withdraw(_ id: String, reason: String, config: DaemonConfig) async -> Bool {
        await system(id, config: config, .withdraw(reason: reason, atMs: WallClock.milliseconds()))
    }

    /// `cancel` of an execution that awaits approval: withdraws its request, or a break-glass run not started
    /// yet; otherwise (it started, or ended, in between) `invalid_state` saying what it is: never "cancelled" for
    /// something that goes on (review 2 of approvals, L1).
    func cancel(_ id: String, by who: String, config: DaemonConfig) async throws(RunvoyError) {
        let reason = "withdrawn by \(who)"
        if await withdraw(id, reason: reason, config: config) { return }
        let record = try? store.approval(id)
        if record?.state == .breakGlass, abandon(id, reason: reason, config: config) { return }
        let status = (try? store.get(id))?.status.rawValue ?? "gone"
        let started = record?.state == .fulfilled || record?.state == .breakGlass
        throw RunvoyError(
            .invalidState,
            started
                ? "execution \(id) has started (\(status)); it can no longer be withdrawn: use kill"
                : "request \(id) is \(record?.state.rawValue ?? "gone") already (execution \(status)); nothing to withdraw"
        )
    }

    /// Applies an event no caller answers for (deadline, withdrawal); nothing (false) when it no longer applies.
    @discardableResult
    private func system(_ id: String, config: DaemonConfig, _ event: ApprovalMachine.Event) async -> Bool {
        let done = try? await serially(id) {
            () async throws(RunvoyError) -> (ApprovalRecord, Result<ApprovalMachine.Change, RunvoyError>)? in
            guard let old = try? store.approval(id) else { return nil }
            let (new, result) = ApprovalMachine.apply(event, to: old)
            guard new != old, (try? store.updateApproval(new, from: old)) == true else { return nil }
            return (new, result)
        }
        guard let (new, result) = done ?? nil else { return false }
        if case .success(let change) = result {
            await applied(change, new, config: config)
            return true
        }
        await ended(new, cause: new.state.rawValue, config: config)
        return false
    }
}
