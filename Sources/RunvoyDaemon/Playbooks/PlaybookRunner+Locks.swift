import RunvoyKit

/// A run's locks (`ExecutionManager+RunLocks`): taken before its first step, given back after its last.
extension PlaybookRunner {
    /// Takes the playbook's locks, waiting in the queue for them (its client told where it stands); the ticket that
    /// holds them, nil when the playbook names none, or why the run may not start (its client went away, the
    /// daemon is stopping).
    func holdLocks() async -> Result<UInt64?, RunvoyError> {
        let events = context.sink
        let activity = context.activity
        let client = ExecutionManager.QueueClient(
            send: { try await events.send($0) }, onHangup: { activity.hangup.on($0) },
            isGone: { activity.hangup.isClosed })
        do throws(RunvoyError) {
            return .success(try await context.executions.holdRunLocks(run, client: client))
        } catch {
            return .failure(error)
        }
    }

    /// The run could not have its locks: no step ran; it ends `cancelled`, every step skipped.
    func notStarted(_ error: RunvoyError) -> PlaybookRunResult {
        context.logger.notice(
            "a playbook run did not get its locks", metadata: ["run": "\(run.id)", "error": "\(error.message)"])
        let steps = run.steps.enumerated().map { index, step in
            PlaybookStepOutcome(index: index, name: step.config.name, state: "skipped", error: error)
        }
        finish(state: "cancelled", steps: steps)
        return PlaybookRunResult(
            runId: run.id, playbook: run.playbook.name, state: "cancelled", steps: steps, callerUid: run.caller.uid,
            callerUser: run.caller.displayName, params: run.values)
    }
}
