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
        let record = try await context.answering(params.id) { () async throws(RunvoyError) in
            try await context.executions.approvals.change(
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
        }
        return .result(
            ApprovalAnswerResult(
                id: record.id, state: record.state, approvals: record.approvals, required: record.required))
    }
}

extension RequestContext {
    /// Runs `answer` (an `approve` or `deny` of request `id`), auditing its refusal as `request_denied` with
    /// `APPROVAL_ID`, as every other refusal is: one's own request, an approver who is not eligible, a stale
    /// digest, a request one may not see (review of approvals, F7). A store that failed is no refusal.
    func answering<T>(_ id: String, _ answer: () async throws(RunvoyError) -> T) async throws -> T {
        do throws(RunvoyError) {
            return try await answer()
        } catch {
            guard error.code != .storeUnavailable, error.code != .internalError else { throw error }
            throw denied(error, fields: [("APPROVAL_ID", String(id.prefix(64)))])
        }
    }
}
