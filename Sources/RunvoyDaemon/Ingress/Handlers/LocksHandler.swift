import RunvoyKit

/// `locks`: every named lock with its mode, holders and waiters. Anyone with a role may look (the permission
/// `executors_read`, like `capabilities`): an execution refused for a lock is told who holds it anyway.
struct LocksHandler: MethodHandler {
    static let method = Method.locks.rawValue
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<LocksResult> {
        try context.require(.executorsRead)
        return .result(LocksResult(locks: context.executions.lockTable(context.config)))
    }
}
