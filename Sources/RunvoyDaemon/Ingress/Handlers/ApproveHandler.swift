import RunvoyKit

/// `approve`: approves a request for approval, bound to the digest the approver was shown (a request that is not
/// that one is refused with `conflict`); on a break-glass run it records the review. Never one's own request,
/// whatever one's roles. The answer is audited (`approval_answered`) before it counts.
struct ApproveHandler: MethodHandler {
    static let method = Method.approve.rawValue
    static let params = ParamsRule<ApproveParams>.required("approve needs params with id and digest")

    func handle(_ params: ApproveParams, context: RequestContext) async throws -> Outcome<ApprovalAnswerResult> {
        try context.require(.approve)
        if let invalid = Approvals.textRefusal(params.comment, what: "a comment") { throw invalid }
        let caller = context.caller
        let record = try await context.executions.approvals.change(
            params.id, caller: caller, config: context.config, audited: true
        ) { record, eligible in
            let now = WallClock.milliseconds()
            if record.state == .breakGlass {
                return .review(
                    uid: caller.uid, user: caller.displayName, eligible: eligible, comment: params.comment ?? "",
                    atMs: now)
            }
            return .approve(
                uid: caller.uid, user: caller.displayName, digest: params.digest, eligible: eligible,
                comment: params.comment, atMs: now)
        }
        return .result(
            ApprovalAnswerResult(
                id: record.id, state: record.state, approvals: record.approvals, required: record.required))
    }
}
