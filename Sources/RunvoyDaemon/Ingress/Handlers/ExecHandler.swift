import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// `exec`: starts a command and attaches it to the connection (its output and exit stream on it), or detaches
/// it and replies with its id. The policy and audit checks, and the audit of refusals, are `ExecutionManager`'s.
/// A command that needs approval first waits for it here (`approval` events), or, detached, replies at once and
/// starts when approved.
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
            isGone: { activity.hangup.isClosed }, sendApproval: { try await events.send($0) })
        do {
            var params = request
            var approval: ApprovalTicket?
            if let record = try await Self.gate(request, context: context) {
                if record.state == .pending && detach {
                    activity.detach()
                    return .result(
                        DetachedResult(
                            executionId: record.id, pid: nil, state: ExecutionStatus.awaitingApproval.rawValue))
                }
                approval =
                    record.state == .breakGlass
                    ? ApprovalTicket(record: record)
                    : try await context.executions.approvals.awaitDecision(
                        record, requestID: id, client: client, config: context.config)
                params.wait = true
            }
            let execution = try await context.executions.start(
                params, requestID: id, caller: context.caller, config: context.config, sink: detach ? nil : sink,
                client: client, approval: approval
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

    /// The request for approval this exec needs (made here), or nil when it needs none. Only requests on an
    /// executor with an approval policy anywhere are planned here; `ExecutionManager.start` refuses any plan that
    /// needs approval without its ticket, whatever the way it came.
    static func gate(_ params: ExecParams, context: RequestContext) async throws(RunvoyError) -> ApprovalRecord? {
        let config = context.config
        guard let executor = config.executor(named: params.executor ?? config.defaultExecutorName),
            params.breakGlass == true || executor.approval != nil
                || executor.commands.rules.contains(where: { $0.approval?.requiresApproval == true })
        else { return nil }
        let plan: ExecPlan
        do throws(ExecRefusal) {
            plan = try ExecPlan.make(params, requestID: context.id, caller: context.caller, config: config)
        } catch {
            throw context.executions.deny(error, caller: context.caller, config: config)
        }
        return try await context.executions.approvals.gate(params, plan, executions: context.executions)
    }
}
