import RunvoyKit

/// `cancel`: takes a waiting execution out of the queue; it never runs. Its owner (with `kill_own`) and
/// administrators (`kill_all`) may. The cancellation is audited as the execution's `execution_cancelled`
/// record; refusals as `request_denied`, with the real reason.
struct CancelHandler: MethodHandler {
    static let method = Method.cancel.rawValue
    static let params = ParamsRule<CancelParams>.required("cancel needs params with execution_id")

    func handle(_ params: CancelParams, context: RequestContext) async throws -> Outcome<CancelResult> {
        let info = try context.visibleExecution(params.executionId)
        let fields = [("EXECUTION_ID", info.executionId), ("OWNER_UID", String(info.callerUid))]
        guard Authorizer.mayKill(context.caller, ownerUid: info.callerUid, context.config) else {
            throw context.denied(
                RunvoyError(.permissionDenied, "execution \(info.executionId) was started by another user"),
                fields: fields)
        }
        if info.status == .awaitingApproval {
            // Withdrawn, or `invalid_state` naming what it is now (started, ended): review 2 of approvals, L1.
            try await context.executions.approvals.cancel(info.executionId, by: context.who, config: context.config)
            return .result(CancelResult(executionId: info.executionId, cancelled: true))
        }
        guard context.executions.cancel(info.executionId, by: context.who) else {
            let status = context.executions.isQueued(info.executionId) ? "queued" : info.status.rawValue
            throw RunvoyError(
                .invalidState, "execution \(info.executionId) does not wait in the queue (\(status)); use kill")
        }
        return .result(CancelResult(executionId: info.executionId, cancelled: true))
    }
}
