import RunvoyKit
import RunvoyStore

extension RequestContext {
    /// The playbook run `id` with its steps, when it exists and the caller may see it (its owner, or `view_all`),
    /// answered as executions are: one the caller may not see is "no run", like a missing one (audited).
    func visibleRun(_ id: String) throws -> PlaybookRunResult {
        guard permits(.viewOwn) || permits(.viewAll) else { throw denied(Authorizer.refusal(caller, .viewOwn, config)) }
        let missing = RunvoyError(.noSuchExecution, "no run \(id)")
        guard let record = try history({ store throws(StoreError) in try store.run(id) }) else { throw missing }
        guard Authorizer.mayView(caller, ownerUid: record.callerUid, config) else {
            let real = RunvoyError(.permissionDenied, "run \(id) was started by another user")
            throw denied(real, told: missing, fields: [("RUN_ID", id), ("OWNER_UID", String(record.callerUid))])
        }
        var steps = record.stepsJSON.flatMap { ExecutionStore.decode([PlaybookStepOutcome].self, $0) }
        if steps == nil {
            // Still running: its steps so far are its executions, oldest first.
            let executions = try history { store throws(StoreError) in
                try store.list(ListParams(limit: ListParams.maximumLimit, runId: id), ownerUid: nil)
            }
            steps = executions.reversed().enumerated().map { index, info in
                PlaybookStepOutcome(
                    index: index, name: "", state: info.status.rawValue, executionId: info.executionId,
                    exitCode: info.exitCode, signal: info.signal)
            }
        }
        return PlaybookRunResult(
            runId: record.id, playbook: record.playbook, state: record.state, steps: steps ?? [],
            callerUid: record.callerUid, callerUser: record.callerUser,
            params: ExecutionStore.decode([String: String].self, record.paramsJSON), startedAtMs: record.startedAtMs,
            finishedAtMs: record.endedAtMs)
    }
}
