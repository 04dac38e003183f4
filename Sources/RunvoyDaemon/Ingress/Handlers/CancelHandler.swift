import RunvoyKit

/// `cancel`: takes a waiting execution out of the queue; it never runs. Its owner (with `kill_own`) and
/// administrators (`kill_all`) may. The cancellation is audited as the execution's `execution_cancelled`
/// record; refusals as `request_denied`, with the real reason. It also withdraws a request for approval (of a
/// command that awaits it, or of a grant).
struct CancelHandler: MethodHandler {
    static let method = Method.cancel.rawValue
    static let params = ParamsRule<CancelParams>.required("cancel needs params with execution_id")

    func handle(_ params: CancelParams, context: RequestContext) async throws -> Outcome<CancelResult> {
        if let withdrawn = await Self.withdrawGrantRequest(params.executionId, context: context) {
            return .result(withdrawn)
        }
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

    /// A request for a grant (which has no execution) is withdrawn by its requester or a `kill_all` holder; nil
    /// for any other id, which is then looked up as an execution (so others learn nothing of the request).
    static func withdrawGrantRequest(_ id: String, context: RequestContext) async -> CancelResult? {
        guard let record = try? context.executions.store.approval(id), record.kind == "grant",
            record.requesterUid == context.caller.uid || context.permits(.killAll)
        else { return nil }
        await context.executions.approvals.withdraw(id, reason: "withdrawn by \(context.who)", config: context.config)
        let state = (try? context.executions.store.approval(id))?.state
        return CancelResult(executionId: id, cancelled: state == .withdrawn)
    }
}
