import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The hooks of the approval gate (join J1): `on_approval_request` when a request is made, before anyone can
/// answer it (a refusal withdraws it), and `on_break_glass` once a break-glass run is recorded (it cannot refuse).
extension Approvals {
    /// Runs the `event` hooks of `record`, the request of `plan`; the refusal of one, or nil.
    func runGateHooks(
        _ event: HookEvent, _ record: ApprovalRecord, _ plan: ExecPlan, runner: HookRunner
    ) async -> RunvoyError? {
        guard !HookRunner.hooks(event, config: plan.config, executor: plan.executor).isEmpty else { return nil }
        var subject = HookSubject(plan, id: record.id)
        subject.breakGlass = event == .onBreakGlass
        subject.approval = HookPayload.Approval(
            id: record.id, state: record.state.rawValue, required: record.required, approvedBy: [],
            digest: record.digest)
        return await runner.run(event, subject, config: plan.config)
    }

    /// `on_approval_request` hooks of a request just stored and not yet recorded: a refusal withdraws it (its row
    /// ends `cancelled` with the reason) and is the caller's answer, audited as a denial.
    func vetoRequest(
        _ record: ApprovalRecord, _ plan: ExecPlan, executions: ExecutionManager
    ) async throws(RunvoyError) {
        guard
            let refusal = await runGateHooks(
                .onApprovalRequest, record, plan, runner: executions.launcher.hooks)
        else { return }
        _ = abandon(record.id, reason: "\(refusal.code.rawValue): \(refusal.message)", config: plan.config)
        throw executions.deny(plan.refusal(refusal), caller: plan.caller, config: plan.config)
    }
}
