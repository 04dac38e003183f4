import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// `approvals`: the requests for approval the caller may see (its own, those whose approvers admit it, or with
/// `view_all` everyone's), pending ones by default, newest first, each with whether the caller may answer it.
struct ApprovalsHandler: MethodHandler {
    static let method = Method.approvals.rawValue
    static let params = ParamsRule<ApprovalsParams>.optional(default: ApprovalsParams())

    func handle(_ params: ApprovalsParams, context: RequestContext) async throws -> Outcome<ApprovalsResult> {
        try context.require(.viewOwn, or: .approve)
        let approvals = context.executions.approvals
        let limit = min(max(params.limit ?? ApprovalsParams.defaultLimit, 1), ApprovalsParams.maximumLimit)
        var records: [ApprovalRecord]
        if let id = params.id {
            records = [try approvals.visible(id, caller: context.caller, config: context.config)]
        } else {
            do throws(StoreError) {
                records = try approvals.store.approvals(states: params.state ?? [.pending], limit: 20 * limit)
            } catch {
                throw RunvoyError(.storeUnavailable, "cannot read the requests for approval (\(error.message))")
            }
            records = records.filter { Approvals.mayView($0, caller: context.caller, config: context.config) }
        }
        return .result(
            ApprovalsResult(
                requests: records.prefix(limit).map { Self.info($0, caller: context.caller, config: context.config) }))
    }

    static func info(_ record: ApprovalRecord, caller: Caller, config: DaemonConfig) -> ApprovalInfo {
        let summary = ExecutionStore.decode(Approvals.Summary.self, record.summary)
        let mayAnswer =
            (record.state == .pending || record.state == .breakGlass) && record.requesterUid != caller.uid
            && !record.answers.contains { $0.uid == caller.uid }
            && Authorizer.mayApprove(caller, record.approvers, config)
        return ApprovalInfo(
            id: record.id, kind: record.kind, state: record.state, requesterUid: record.requesterUid,
            requester: record.requesterUser, executor: record.executor ?? "", runAs: summary?.runAs ?? "",
            command: summary?.command ?? "", argv: summary?.argv ?? [], cwd: summary?.cwd ?? "",
            envKeys: summary?.envKeys ?? [], secrets: summary?.secrets ?? [], terminal: summary?.terminal ?? false,
            timeoutMs: summary?.timeoutMs, reason: record.reason, createdAtMs: record.createdAtMs,
            expiresAtMs: record.expiresAtMs, required: record.required, approvers: record.approvers,
            answers: record.answers, digest: record.digest, decision: record.decision, mayAnswer: mayAnswer)
    }
}
