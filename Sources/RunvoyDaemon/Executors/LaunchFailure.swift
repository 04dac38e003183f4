import RunvoyKit
import RunvoyStore

/// A launch that failed, with the stage it failed at. It carries what the client is told (`error`), whether that
/// is recorded as a denied decision (nothing was allowed in the audit trail yet), why the history says the
/// command never ran, and the `execution_finished` record of a command whose start was already audited.
struct LaunchFailure: Error {
    enum Stage: Error {
        /// The history row could not be written.
        case history(StoreError)
        /// The executor's secrets could not be read or written.
        case secrets(RunvoyError)
        /// The journal did not take the `decision` or `execution_started` record (fail-closed).
        case audit(RunvoyError)
        /// The command could not be started.
        case spawn(SpawnError)
        /// The command started, but its pipes could not be handed to the event loop; it was killed.
        case pipes(any Error)
        /// A `pre_exec` hook refused it (`hook_refused`), before its secrets were injected.
        case vetoed(RunvoyError)
    }

    var stage: Stage

    /// What the client is told.
    var error: RunvoyError {
        switch stage {
        case .history: RunvoyError(.storeUnavailable, "the execution history cannot be written; nothing was run")
        case .secrets(let error), .audit(let error), .vetoed(let error): error
        case .spawn(let error): error.wireError
        case .pipes(let error):
            RunvoyError(.spawnFailed, "cannot set up the command's pipes: \(error)", reason: "resources")
        }
    }

    /// Whether the failure is recorded as a denied `decision`: it came before the allowing record was written.
    var isDenial: Bool {
        switch stage {
        case .history, .secrets, .vetoed: true
        case .audit, .spawn, .pipes: false
        }
    }
}

extension LaunchFailure.Stage {
    /// Why the history says the command never ran.
    var historyReason: String {
        switch self {
        case .history(let error): "store_unavailable: \(error.message)"
        case .secrets(let error), .audit(let error), .vetoed(let error): "\(error.code.rawValue): \(error.message)"
        case .spawn(let error): "spawn_failed: \(error.wireError.message)"
        case .pipes(let error): "pipes: \(error)"
        }
    }

    /// The `execution_finished` record of a command whose `execution_started` record is written; nil before that.
    func finishedRecord(executionID id: String, fields: [(String, String)], pid: Int32?) -> AuditEvent? {
        switch self {
        case .history, .secrets, .audit, .vetoed:
            return nil
        case .spawn(let error):
            let message = error.wireError.message
            return AuditEvent(
                .executionFinished, priority: 4, message: "execution \(id) failed to start: \(message)",
                fields: fields + [("REASON", "spawn_failed: \(message)")])
        case .pipes(let error):
            return AuditEvent(
                .executionFinished, priority: 4, message: "execution \(id) was killed at start: \(error)",
                fields: fields + [("PID", String(pid ?? 0)), ("REASON", "pipes: \(error)")])
        }
    }
}

extension ExecutionStore.Outcome {
    /// The end of an execution that was allowed but never ran.
    static func notStarted(reason: String) -> ExecutionStore.Outcome {
        ExecutionStore.Outcome(
            status: .failed, pid: nil, exitCode: nil, signal: nil, startedAtMs: nil,
            finishedAtMs: WallClock.milliseconds(), durationUsec: nil,
            totals: .init(stdoutBytes: 0, stderrBytes: 0, storedBytes: 0, droppedBytes: 0, failure: nil),
            reason: reason)
    }
}
