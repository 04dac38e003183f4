import RunvoyKit
import RunvoyStore

/// `list`: executions from the history that the caller may see, newest first, with filters.
struct ListHandler: MethodHandler {
    static let method = Method.list.rawValue
    static let params = ParamsRule.optional(default: ListParams())

    func handle(_ params: ListParams, context: RequestContext) async throws -> Outcome<ListResult> {
        var params = params
        if let limit = params.limit, !(1...ListParams.maximumLimit).contains(limit) {
            throw RunvoyError(.invalidArgument, "limit must be between 1 and \(ListParams.maximumLimit)")
        }
        params.limit = params.limit ?? ListParams.defaultLimit
        try context.require(.viewOwn, or: .viewAll)
        let scope = Authorizer.historyScope(context.caller, context.config)
        let found = try context.history { store throws(StoreError) in try store.list(params, ownerUid: scope) }
        return .result(ListResult(executions: found.map(context.withLiveState)))
    }
}
