import RunvoyKit

/// `deny`: denies a request for approval, with a comment its requester is told; one denial ends it. Only its
/// approvers may, never its requester. Audited (`approval_answered`) before it counts.
struct DenyHandler: MethodHandler {
    static let method = Method.deny.rawValue
    static let params = ParamsRule<DenyParams>.required("deny needs params with id and comment")

    func handle(_ params: DenyParams, context: RequestContext) async throws -> Outcome<ApprovalAnswerResult> {
        try context.require(.approve)
        guard !params.comment.isEmpty else { throw RunvoyError(.invalidArgument, "deny needs a comment") }
        if let invalid = Approvals.textRefusal(params.comment, what: "a comment") { throw invalid }
        let caller = context.caller
        let record = try await context.answering(params.id) { () async throws(RunvoyError) in
            try await context.executions.approvals.change(
                params.id, caller: caller, config: context.config, audited: true
            ) { _, eligible in
                .deny(
                    uid: caller.uid, user: caller.displayName, eligible: eligible, comment: params.comment,
                    atMs: WallClock.milliseconds())
            }
        }
        return .result(
            ApprovalAnswerResult(
                id: record.id, state: record.state, approvals: record.approvals, required: record.required))
    }
}
