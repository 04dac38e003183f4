import RunvoyKit

/// `exec`: starts a command and attaches it to the connection (its output and exit stream on it), or detaches
/// it and replies with its id. The policy and audit checks, and the audit of refusals, are `ExecutionManager`'s.
struct ExecHandler: MethodHandler {
    static let method = Method.exec.rawValue
    static let params = ParamsRule<ExecParams>.required("exec needs params with argv")

    func handle(_ request: ExecParams, context: RequestContext) async throws -> Outcome<DetachedResult> {
        if let attached = context.attached, !attached.isFinished {
            throw RunvoyError(.invalidState, "execution \(attached.id) is still attached to this connection")
        }
        let id = context.id
        let sink = context.sink.binaryOutput(request.binaryOutput ?? false)
        let detach = request.detach ?? false
        let activity = context.activity
        activity.attach()
        let events = context.sink
        let client = ExecutionManager.QueueClient(
            send: { try await events.send($0) }, onHangup: { activity.hangup.on($0) },
            isGone: { activity.hangup.isClosed })
        do {
            let execution = try await context.executions.start(
                request, requestID: id, caller: context.caller, config: context.config, sink: detach ? nil : sink,
                client: client
            ) { execution in
                try await sink.send(
                    StartedEvent(
                        id: id, executionId: execution.id, executor: execution.executorName, runAs: execution.runAs,
                        pid: execution.pid))
            }
            if detach {
                activity.detach()
                return .result(DetachedResult(executionId: execution.id, pid: execution.pid))
            }
            // Not awaited: it only ends the connection's busy mark when the execution ends, and ends itself then.
            Task {
                await execution.waitFinished()
                activity.detach()
            }
            return .attach(execution)
        } catch {
            activity.detach()
            throw error
        }
    }
}
