import RunvoyKit

/// `locks`: every named lock with its mode, holders and waiters. Anyone with a role may look (the permission
/// `executors_read`, like `capabilities`), but another user's execution is named only to a caller who may see it
/// (`view_all`, as in `status` and `list`), and its executor only to one who may use that executor.
struct LocksHandler: MethodHandler {
    static let method = Method.locks.rawValue
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<LocksResult> {
        try context.require(.executorsRead)
        return .result(LocksResult(locks: context.executions.lockTable(context.config, for: context.caller)))
    }
}
