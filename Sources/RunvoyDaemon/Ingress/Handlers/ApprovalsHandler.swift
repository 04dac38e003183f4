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
        let records: [ApprovalRecord]
        if let id = params.id {
            records = [try approvals.visible(id, caller: context.caller, config: context.config)]
        } else {
            records = try Self.listing(params.state ?? [.pending], limit: limit, context: context)
        }
        return .result(
            ApprovalsResult(
                requests: records.prefix(limit).map { Self.info($0, caller: context.caller, config: context.config) }))
    }

    /// The most of a listing's bytes (what approvers are shown of its requests), however many it may hold.
    static let maxListingBytes = 4 << 20

    /// The requests in `states` the caller may see, newest first, at most `limit`, without their stored
    /// parameters. Who may see no one else's gets its own, filtered in SQL; an approver's visibility is decided
    /// on the requests' heads (requester and approvers) before anything else is read (review of approvals, F5).
    static func listing(
        _ states: [ApprovalState], limit: Int, context: RequestContext
    ) throws(RunvoyError) -> [ApprovalRecord] {
        let (caller, config) = (context.caller, context.config)
        let store = context.executions.approvals.store
        let viewAll = Authorizer.permits(caller, .viewAll, config)
        let approver = Authorizer.permits(caller, .approve, config)
        do throws(StoreError) {
            let heads = try store.approvalHeads(
                states: states, requesterUid: viewAll || approver ? nil : caller.uid,
                limit: viewAll || !approver ? limit : 20 * limit)
            let visible = heads.filter {
                viewAll || $0.requesterUid == caller.uid || Authorizer.mayApprove(caller, $0.approvers, config)
            }
            return try store.listedApprovals(visible.prefix(limit).map(\.id), maxBytes: maxListingBytes)
        } catch {
            throw RunvoyError(.storeUnavailable, "cannot read the requests for approval (\(error.message))")
        }
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
