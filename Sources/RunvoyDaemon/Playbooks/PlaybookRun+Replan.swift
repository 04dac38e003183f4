import RunvoyConfig
import RunvoyKit

extension PlaybookRun {
    /// Step `index` as the configuration in force now plans it, and that configuration: a reload or a change of
    /// grants since the run was checked reaches every later step. The playbook must be the same definition and the
    /// caller still allowed to run it, the values (paths on the filesystem as it is now) must still bind, and the
    /// step must plan again as `exec` would; else the refusal, audited, and the step does not start.
    func replanned(_ index: Int, context: RequestContext) throws(RunvoyError) -> (Step, DaemonConfig) {
        let current = context.server.config.current
        let step = steps[index]
        let fields = [("PLAYBOOK", playbook.name), ("RUN_ID", id), ("STEP", step.config.name)]
        if let why = step.context.staleness(caller: caller, in: current) {
            throw Self.audited(context.denied(RunvoyError(.cancelled, why), fields: fields), context)
        }
        if case .failure(let error) = PlaybookArguments.bind(values, to: playbook, writer: caller.pathWriter) {
            let reason = RunvoyError(
                .invalidArgument,
                "the run's values no longer hold, so step '\(step.config.name)' did not run: \(error.runvoyError.message)"
            )
            throw Self.audited(context.denied(reason, fields: fields), context)
        }
        let plan = try Self.check(
            step.params, step.context, index: index, of: playbook, config: current, context: context,
            outcome: "so it did not run")
        // A run that holds locks holds every lock its steps need: a step must not wait for others while its run
        // holds these (two runs could wait for each other for ever).
        if !locks.isEmpty, !plan.lockClaims.isEmpty {
            let names = plan.lockClaims.map { $0.shared ? $0.name + " (shared)" : $0.name }.joined(separator: ", ")
            let reason = RunvoyError(
                .cancelled,
                "executor '\(plan.executor.name)' of step '\(step.config.name)' now names locks its run does not hold "
                    + "as it needs them (\(names)): a reload changed them during the run, so it did not run; start the run again"
            )
            throw Self.audited(context.denied(reason, fields: fields), context)
        }
        return (step, current)
    }

    /// Every step replanned under the configuration in force (after a wait for approval, before the run starts).
    func replannedAll(context: RequestContext) throws(RunvoyError) {
        for index in steps.indices { _ = try replanned(index, context: context) }
    }

    private static func audited(_ refusal: Refusal, _ context: RequestContext) -> RunvoyError {
        context.auditor.recordBestEffort(refusal.record)
        return refusal.error
    }
}
