import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// `approvals`: the requests for approval the caller may see (its own, those whose approvers admit it, or with
/// `view_all` everyone's), pending ones by default, newest first, each with whether the caller may answer it.
/// Like `list`, a listing carries each request's argv and environment names within `ReplyBounds.listed` and stops
/// before `ListHandler.replyBytes` of them (`more`, `before`); one request (`id`) within `ReplyBounds.single`.
struct ApprovalsHandler: MethodHandler {
    static let method = Method.approvals.rawValue
    static let params = ParamsRule<ApprovalsParams>.optional(default: ApprovalsParams())

    func handle(_ params: ApprovalsParams, context: RequestContext) async throws -> Outcome<ApprovalsResult> {
        try context.require(.viewOwn, or: .approve)
        let (caller, config) = (context.caller, context.config)
        if let id = params.id {
            let record = try context.executions.approvals.visible(id, caller: caller, config: config)
            return .result(
                ApprovalsResult(requests: [Self.info(record, caller: caller, config: config).bounded(.single)]))
        }
        if let before = params.before, !ExecutionID.isValid(before) {
            throw RunvoyError(.invalidArgument, "before: '\(before)' is not a request id (26 characters of base32)")
        }
        let limit = min(max(params.limit ?? ApprovalsParams.defaultLimit, 1), ApprovalsParams.maximumLimit)
        let listing = try Self.listing(
            params.state ?? [.pending], limit: limit, before: params.before, context: context)
        let requests = listing.records.map { Self.info($0, caller: caller, config: config).bounded(.listed) }
        return .result(Self.page(requests, more: listing.more))
    }

    /// A listing's reply: its requests while their JSON fits in `budget` (the first always), `more` when some were
    /// left out or others follow.
    static func page(_ requests: [ApprovalInfo], more: Bool, budget: Int = ListHandler.replyBytes) -> ApprovalsResult {
        var page = ReplyPage<ApprovalInfo>(budget: budget)
        for request in requests where !page.add(request) {
            return ApprovalsResult(requests: page.items, more: true)
        }
        return ApprovalsResult(requests: page.items, more: more)
    }

    /// The most of a listing's bytes read from the store (what approvers are shown of its requests), however many
    /// it may hold.
    static let maxListingBytes = 4 << 20

    /// The requests in `states` the caller may see, newest first, after `before` when given, at most `limit`,
    /// without their stored parameters, and whether others may follow. Who may see no one else's gets its own,
    /// filtered in SQL; an approver's visibility is decided on the requests' heads (requester and approvers)
    /// before anything else is read (review of approvals, F5).
    static func listing(
        _ states: [ApprovalState], limit: Int, before: String?, context: RequestContext
    ) throws(RunvoyError) -> (records: [ApprovalRecord], more: Bool) {
        let (caller, config) = (context.caller, context.config)
        let store = context.executions.approvals.store
        let viewAll = Authorizer.permits(caller, .viewAll, config)
        let approver = Authorizer.permits(caller, .approve, config)
        do throws(StoreError) {
            var cursor: (createdAtMs: Int64, id: String)?
            if let before {
                cursor = (try store.approvalCreatedAt(before) ?? ExecutionID.milliseconds(before) ?? 0, before)
            }
            let headLimit = viewAll || !approver ? limit + 1 : 20 * limit
            let heads = try store.approvalHeads(
                states: states, requesterUid: viewAll || approver ? nil : caller.uid, before: cursor,
                limit: headLimit)
            let visible = heads.filter {
                viewAll || $0.requesterUid == caller.uid || Authorizer.mayApprove(caller, $0.approvers, config)
            }
            let ids = visible.prefix(limit).map(\.id)
            let records = try store.listedApprovals(ids, maxBytes: maxListingBytes)
            let more = visible.count > limit || heads.count == headLimit || records.count < ids.count
            return (records, !records.isEmpty && more)
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
            answers: record.answers, digest: record.digest, decision: record.decision, mayAnswer: mayAnswer,
            // A request stored before `stdin` was kept: one that needed its client without a terminal read it.
            stdin: summary?.stdin ?? (record.needsClient && summary?.terminal != true)
        )
        .with(grant: record.kind == "grant" ? ExecutionStore.decode(GrantRequestSummary.self, record.summary) : nil)
    }
}
