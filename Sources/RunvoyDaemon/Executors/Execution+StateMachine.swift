import RunvoyKit

extension Execution {
    /// An execution's life without processes, pipes or clocks: `Execution` takes its lock, tells the machine what
    /// happened, and carries out the action it returns outside the lock (signals, timers). Instants are passed in,
    /// so tests step through a life without waiting.
    ///
    /// The command runs until its process group leader exits; then the output is drained (until every process
    /// holding the pipes is done, or the drain grace ends); then the execution records its end (the leader stays a
    /// zombie meanwhile, so its process group id cannot be reused); then it is finished and the leader is reaped.
    /// A termination (SIGTERM, then SIGKILL after the kill grace) can be asked for in any phase before the end;
    /// it is asked for once.
    struct StateMachine: Sendable {
        enum State: Sendable, Equatable {
            /// The command runs.
            case running(Termination)
            /// The leader exited with this status; output is still read.
            case draining(ExitStatus, Termination)
            /// Output is done and the exit is known; the records are being written.
            case finishing(ExitEvent, Termination)
            /// Recorded; the leader is reaped (or about to be), and nothing may be signalled any more.
            case finished(ExitEvent)
        }

        /// Whether the daemon asked the command to end, and whether because its timeout expired.
        enum Termination: Sendable, Equatable {
            case none
            case requested(timedOut: Bool)

            var timedOut: Bool { self == .requested(timedOut: true) }
        }

        private(set) var state: State = .running(.none)
        let executionID: String
        let requestID: RequestID?
        /// When the command started, for the duration in its `exit` event.
        let started: ContinuousClock.Instant

        init(executionID: String, requestID: RequestID?, started: ContinuousClock.Instant) {
            self.executionID = executionID
            self.requestID = requestID
            self.started = started
        }

        enum TerminateAction: Sendable, Equatable {
            /// SIGTERM to the process group, and SIGKILL once the kill grace is over.
            case signalAndArmKillTimer
            case none
        }

        /// The daemon wants the command to end (the caller asked, its client went away with `kill_on_disconnect`,
        /// shutdown, or its timeout: `timedOut`). A timeout is remembered even when a termination was asked already.
        mutating func terminate(timedOut: Bool) -> TerminateAction {
            func ask(_ termination: Termination) -> (Termination, TerminateAction) {
                switch termination {
                case .none: return (.requested(timedOut: timedOut), .signalAndArmKillTimer)
                case .requested(let already): return (.requested(timedOut: already || timedOut), .none)
                }
            }
            switch state {
            case .running(let termination):
                let (next, action) = ask(termination)
                state = .running(next)
                return action
            case .draining(let status, let termination):
                let (next, action) = ask(termination)
                state = .draining(status, next)
                return action
            case .finishing(let event, let termination):
                let (next, action) = ask(termination)
                state = .finishing(event, next)
                return action
            case .finished:
                return .none
            }
        }

        /// Whether a signal may go to the process group: until the end, since the leader is reaped only once
        /// finished (its pid, the group's id, cannot have been reused before).
        var maySignal: Bool {
            if case .finished = state { return false }
            return true
        }

        /// The kill grace after SIGTERM is over: SIGKILL unless the execution has finished.
        var killsWhenGraceEnds: Bool { maySignal }

        /// The process group leader exited (seen, not reaped). Output is read for at most the drain grace more.
        mutating func leaderExited(_ status: ExitStatus) {
            guard case .running(let termination) = state else {
                preconditionFailure("the leader exited twice, or after the output was drained: \(state)")
            }
            state = .draining(status, termination)
        }

        /// Both output pipes are done (or were closed at the end of the drain grace) at `now`. Returns the `exit`
        /// event the records and the client get.
        mutating func outputDrained(at now: ContinuousClock.Instant) -> ExitEvent {
            guard case .draining(let status, let termination) = state else {
                preconditionFailure("output drained before the leader exited: \(state)")
            }
            var exitCode: Int32?
            var signal: Int32?
            switch status {
            case .exited(let code): exitCode = code
            case .signaled(let number): signal = number
            }
            let elapsed = now - started
            let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
            let event = ExitEvent(
                id: requestID, executionId: executionID, exitCode: exitCode, signal: signal,
                timedOut: termination.timedOut, durationUsec: micros)
            state = .finishing(event, termination)
            return event
        }

        /// The end is recorded: from now on nothing is signalled, and the leader may be reaped.
        mutating func finish() -> ExitEvent {
            guard case .finishing(let event, _) = state else {
                preconditionFailure("finished before the output was drained: \(state)")
            }
            state = .finished(event)
            return event
        }

        /// The `exit` event, once finished.
        var exitEvent: ExitEvent? {
            if case .finished(let event) = state { return event }
            return nil
        }
    }
}
