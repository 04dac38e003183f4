import RunvoyKit

/// `status`: one execution from the history, with what only the running execution knows yet and its hooks' runs,
/// its argv within `ReplyBounds.single`; or, for a `run-` id, a playbook run and its steps.
struct StatusHandler: MethodHandler {
    static let method = Method.status.rawValue
    static let params = ParamsRule<ExecutionRef>.required("status needs params with execution_id")

    func handle(_ ref: ExecutionRef, context: RequestContext) async throws -> Outcome<StatusReply> {
        if PlaybookRun.isRunID(ref.executionId) { return .result(.run(try context.visibleRun(ref.executionId))) }
        let info = context.withLiveState(try context.visibleExecution(ref.executionId))
        return .result(.execution(context.withHookRuns(info).bounded(.single)))
    }
}
