import RunvoyKit

/// `status`: one execution from the history, with what only the running execution knows yet and its hooks' runs,
/// its argv within `ReplyBounds.single`.
struct StatusHandler: MethodHandler {
    static let method = Method.status.rawValue
    static let params = ParamsRule<ExecutionRef>.required("status needs params with execution_id")

    func handle(_ ref: ExecutionRef, context: RequestContext) async throws -> Outcome<ExecutionInfo> {
        let info = context.withLiveState(try context.visibleExecution(ref.executionId))
        return .result(context.withHookRuns(info).bounded(.single))
    }
}
