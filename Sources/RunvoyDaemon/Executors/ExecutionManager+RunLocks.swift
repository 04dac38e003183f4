import Glibc
import RunvoyConfig
import RunvoyKit

/// A playbook run's locks: the run takes its locks (`PlaybookRun.locks`: the playbook's and, with them, its steps'
/// executors') once, before its first step, and holds them until its last step's `post_exec` hooks have ended, so
/// that no other run of it, nor any execution on an executor that names one of them, comes between its steps; its
/// steps take none. The run's claim goes
/// through the scheduler as an execution's does (it waits in the queue behind the holders, writers first, its
/// client told where it stands by `queued` events, and leaves it when its client goes or the daemon stops), under
/// a key of its playbook that is no executor's name, as a claim of locks only: it takes no executor's slot but one
/// share of its user's running executions, which its steps then use (`AdmissionScheduler.Request.inRunHold`: they
/// take and wait for none), so that no user holds locks beyond its share and nothing of its user's can take the share its steps
/// need (reviews 3 and 4, R3-M2, R4-M1). A run keeps its hold until its last step's `post_exec` hooks have ended.
extension ExecutionManager {
    /// A run that holds, or waits for, its playbook's locks.
    struct RunHold: Sendable {
        let runID: String
        let playbook: String
        let caller: Caller
        /// Wall-clock milliseconds since it holds them; nil while it waits.
        var sinceMs: Int64?

        /// How a holder of a lock is named to whom it is `visible` (as executions are: `lockBusy`).
        func describe(visible: Bool, now: Int64) -> String {
            guard visible else { return "another user's playbook run" }
            let held = Duration.milliseconds(max(0, now - (sinceMs ?? now)))
            return "playbook run \(runID) of '\(playbook)' by \(caller.displayName) for "
                + DurationParser.format(Duration.seconds(held.components.seconds))
        }
    }

    /// Every run takes one of its user's `exec_rate` tokens before anything of it is recorded and before it waits
    /// for its locks (reviews 2 and 3: R2-M5, R3-L1): runs cannot write records and rows, nor fill the queue, faster
    /// than executions could. Returns the keys taken: the run gives them back just before its first step is
    /// admitted (`refundRun`), which takes its own, so a run of n steps costs n, as `exec_rate` counts executions
    /// started (review 4, R4-L1); a run that starts no step keeps it spent (`respendRun`).
    func meterRun(_ run: PlaybookRun) throws(RunvoyError) -> [RateBuckets.Key] {
        switch rates.takeExecution(caller: run.caller, executor: nil, config: run.config) {
        case .success(let keys): return keys
        case .failure(let limited): throw limited
        }
    }

    /// Gives back the token `meterRun` took, for the run's first step to take.
    func refundRun(_ keys: [RateBuckets.Key]) { rates.refund(keys) }

    /// Takes the run's token again when its first step to run did not start (refused before it took one), so
    /// that a run costs at least one (review of 700fc38: else records and rows cost nothing while an executor's
    /// rate refuses the step). When the user has none left, its next run is refused by `meterRun`.
    func respendRun(_ run: PlaybookRun) {
        _ = rates.takeExecution(caller: run.caller, executor: nil, config: run.config)
    }

    /// The scheduler's key of a run's claim: `playbook:` and the playbook's name (no executor's name has a colon).
    static func runLockKey(_ playbook: String) -> String { "playbook:" + playbook }

    /// Takes `run`'s locks, waiting in the queue for them while telling `client` where it stands; returns the
    /// ticket that holds them (nil when the playbook names none), to give to `releaseRunLocks` once the run ends.
    /// Throws what ended the wait (its client gone, the daemon stopping): then no step may run.
    func holdRunLocks(_ run: PlaybookRun, client: QueueClient?) async throws(RunvoyError) -> UInt64? {
        guard !run.locks.isEmpty else { return nil }
        let now = WallClock.milliseconds()
        let claims = run.locks.map { AdmissionScheduler<UInt64>.LockClaim(name: $0.name, shared: $0.shared) }
        let limits = FairShares.Limits.executions(run.config.limits)
        let admitted = state.withLock { state -> Result<(ticket: UInt64, waits: Bool), RunvoyError> in
            guard case .serving = state.phase else { return .failure(Self.runNotStarted(run, Self.stopping)) }
            if !state.limitsObserved { state.limits = limits }
            state.nextTicket += 1
            let request = AdmissionScheduler<UInt64>.Request(
                id: state.nextTicket, uid: run.caller.uid,
                holder: FairShares.Holder(roles: Authorizer.roles(run.caller, run.config)),
                executor: Self.runLockKey(run.playbook.name), concurrency: nil, locks: claims)
            let started = state.scheduler.arrive(request, within: limits)
            began(started.filter { $0 != request.id }, &state)
            let holds = started.contains(request.id)
            state.runHolds[request.id] = RunHold(
                runID: run.id, playbook: run.playbook.name, caller: run.caller, sinceMs: holds ? now : nil)
            if !holds {
                state.room.add(
                    WaitingRoom.Waiter(
                        ticket: request.id, executionID: run.id, executor: request.executor, uid: request.uid,
                        holder: request.holder, concurrency: nil, queuedAtMs: now, locks: claims,
                        caller: run.caller, config: run.config))
            }
            return .success((request.id, !holds))
        }
        let (ticket, waits) = try admitted.get()
        if waits { try await awaitRunLocks(ticket, run, since: now, client: client) }
        return ticket
    }

    /// Waits until the scheduler gives the waiting `ticket` its locks, or it leaves the queue.
    private func awaitRunLocks(
        _ ticket: UInt64, _ run: PlaybookRun, since: Int64, client: QueueClient?
    ) async throws(RunvoyError) {
        let waiting = WaitRequest(executionID: run.id, createdAtMs: since, timeout: nil)
        let first = state.withLock { queueEvent(ticket, run.requestID, &$0) }
        let stop = watch(ticket, waiting, run.requestID, client: client, first: first)
        let turn = await turn(ticket)
        stop()
        switch turn {
        case .started:
            state.withLock { state in
                // `began` counted it as a launch: it launches nothing.
                state.launching -= 1
                state.runHolds[ticket]?.sinceMs = WallClock.milliseconds()
                closeQueueIfDone(&state)
            }
            if client?.isGone() == true {
                releaseRunLocks(ticket)
                throw Self.runNotStarted(run, Self.clientGone)
            }
        case .left(let error, _):
            _ = state.withLock { $0.runHolds.removeValue(forKey: ticket) }
            throw Self.runNotStarted(run, error)
        }
    }

    /// Gives back the locks a run holds (nothing for nil, or once given back).
    func releaseRunLocks(_ ticket: UInt64?) {
        guard let ticket else { return }
        state.withLock { state in
            guard state.runHolds.removeValue(forKey: ticket) != nil else { return }
            began(state.scheduler.finish(ticket, within: state.limits), &state)
            closeQueueIfDone(&state)
        }
    }

    /// At shutdown, once the queue is empty (no run waits for its locks): every run gives back its locks.
    func releaseAllRunLocks(_ state: inout State) {
        for ticket in state.runHolds.keys.sorted() {
            began(state.scheduler.finish(ticket, within: state.limits), &state)
        }
        state.runHolds = [:]
    }

    private static func runNotStarted(_ run: PlaybookRun, _ error: RunvoyError) -> RunvoyError {
        RunvoyError(
            error.code,
            "playbook run \(run.id) of '\(run.playbook.name)' waited for its locks and no step ran: \(error.message)")
    }
}
