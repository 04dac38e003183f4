import RunvoyKit

/// `revoke`: ends a temporary grant before its time. Administrators only (`grants_manage`); audited
/// (`grant_changed`) before the grant ends. The user's next request is judged without it.
struct RevokeHandler: MethodHandler {
    static let method = Method.revoke.rawValue
    static let params = ParamsRule<RevokeParams>.required("revoke needs params with grant_id")

    func handle(_ params: RevokeParams, context: RequestContext) async throws -> Outcome<GrantResult> {
        try context.require(.grantsManage)
        if let invalid = Approvals.textRefusal(params.comment, what: "a comment") { throw invalid }
        let row = try await context.grants().revoke(params.grantId, comment: params.comment, by: context.caller)
        return .result(GrantResult(grant: Grants.info(row)))
    }
}
