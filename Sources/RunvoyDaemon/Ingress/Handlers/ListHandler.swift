import RunvoyKit
import RunvoyStore

/// `list`: executions from the history that the caller may see, newest first, with filters, a page at a time.
/// Each execution carries a shortened argv (`ReplyBounds.listed`), and the reply stops before `replyBytes` of
/// them: `more` says that there are others, `before` (the last id) continues from there.
struct ListHandler: MethodHandler {
    static let method = Method.list.rawValue
    static let params = ParamsRule.optional(default: ListParams())
    /// The bytes of execution objects one reply carries at most (its envelope adds a few dozen): comfortably under
    /// the 1 MiB a frame from the daemon may have.
    static let replyBytes = 768 << 10

    func handle(_ params: ListParams, context: RequestContext) async throws -> Outcome<ListResult> {
        var params = params
        if let limit = params.limit, !(1...ListParams.maximumLimit).contains(limit) {
            throw RunvoyError(.invalidArgument, "limit must be between 1 and \(ListParams.maximumLimit)")
        }
        params.limit = params.limit ?? ListParams.defaultLimit
        if let before = params.before, !ExecutionID.isValid(before) {
            throw RunvoyError(.invalidArgument, "before: '\(before)' is not an execution id (26 characters of base32)")
        }
        try context.require(.viewOwn, or: .viewAll)
        let scope = Authorizer.historyScope(context.caller, context.config)
        var page = ListPage(budget: Self.replyBytes)
        let more = try context.history { store throws(StoreError) in
            try store.list(params, ownerUid: scope, before: try Self.cursor(params.before, store)) { info in
                page.add(context.withLiveState(info).bounded(.listed))
            }
        }
        return .result(ListResult(executions: page.executions, more: more))
    }

    /// Where the page after `before` starts: that execution's creation time and id. An id no longer in the history
    /// (retention removed it) starts from the time in the id.
    static func cursor(_ before: String?, _ store: ExecutionStore) throws(StoreError) -> (Int64, String)? {
        guard let before, let fromID = ExecutionID.milliseconds(before) else { return nil }
        return (try store.createdAt(before) ?? fromID, before)
    }
}

/// A reply being filled with a listing (`list`'s executions, `approvals`' requests): items while their JSON fits
/// in the budget, and always the first one, so that paging always moves on.
struct ReplyPage<Item: Encodable> {
    private(set) var items: [Item] = []
    private var bytes = 0
    let budget: Int

    init(budget: Int) { self.budget = budget }

    /// Adds `item` when it fits; false when the page is full.
    mutating func add(_ item: Item) -> Bool {
        // Its JSON as the reply will hold it, and a comma.
        let size = ((try? Frame.payload(item))?.count ?? budget) + 1
        guard items.isEmpty || bytes + size <= budget else { return false }
        items.append(item)
        bytes += size
        return true
    }
}

typealias ListPage = ReplyPage<ExecutionInfo>

extension ReplyPage where Item == ExecutionInfo {
    var executions: [ExecutionInfo] { items }
}
