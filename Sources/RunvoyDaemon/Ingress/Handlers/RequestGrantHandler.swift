import RunvoyConfig
import RunvoyKit

/// `request_grant`: asks for a role or an executor for a limited time, as `grants.requestable_*` allow, through
/// the approval flow of `exec` (`grants.approval`; never approved by the requester). It waits, sending `approval`
/// events, until the grant is made (the reply carries it) or the request ends (its error); with `detach` it
/// replies at once and the grant is made when approved.
struct RequestGrantHandler: MethodHandler {
    static let method = Method.requestGrant.rawValue
    static let params = ParamsRule<RequestGrantParams>.required(
        "request_grant needs params with role or executor, for_ms, reason")

    func handle(_ params: RequestGrantParams, context: RequestContext) async throws -> Outcome<RequestGrantResult> {
        try context.require(.grantsRequest)
        let config = context.config
        let subject = try GrantHandler.subject(role: params.role, executor: params.executor, config)
        guard config.grantSettings.mayRequest(subject) else {
            throw context.denied(
                RunvoyError(
                    .permissionDenied,
                    "\(subject.display) may not be asked for (grants.requestable_roles, grants.requestable_executors)"
                ))
        }
        try GrantHandler.check(forMs: params.forMs, reason: params.reason, config)
        let grants = try context.grants()
        let approvals = context.executions.approvals
        let asked = Grants.Asked(
            role: params.role, executor: params.executor, forMs: params.forMs, reason: params.reason)
        let record = try await grants.request(asked, caller: context.caller, config: config, approvals: approvals)
        var result = RequestGrantResult(
            id: record.id, state: record.state, required: record.required, approvers: record.approvers,
            expiresAtMs: record.expiresAtMs)
        if params.detach == true { return .result(result) }
        let activity = context.activity
        activity.attach()
        defer { activity.detach() }
        let events = context.sink
        let client = ExecutionManager.QueueClient(
            send: { _ in }, onHangup: { activity.hangup.on($0) }, isGone: { activity.hangup.isClosed },
            sendApproval: { try await events.send($0) })
        let ticket = try await approvals.awaitDecision(
            record, requestID: context.id, client: client, config: config)
        let grant = try await grants.spend(ticket, approvals: approvals)
        result.state =
            grant == nil ? (try? context.executions.store.approval(record.id))?.state ?? .approved : .fulfilled
        result.grant = grant.map(Grants.info)
        return .result(result)
    }
}
