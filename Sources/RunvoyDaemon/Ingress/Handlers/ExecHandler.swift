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
            var config = context.config
            switch try await Self.approval(request, detach: detach, client: client, context: context) {
            case .none:
                break
            case .detached(let id):
                activity.detach()
                return .result(
                    DetachedResult(executionId: id, pid: nil, state: ExecutionStatus.awaitingApproval.rawValue))
            case .ticket(let ticket, let current):
                (approval, config) = (ticket, current)
                params.wait = true
            }
            let execution = try await context.executions.start(
                params, requestID: id, caller: context.caller, config: config, sink: detach ? nil : sink,
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

    /// Where the approval `request` needs stands before it starts.
    enum Approval {
        /// It needs none.
        case none
        /// It waits for approval detached: the reply says so.
        case detached(String)
        /// It may start with this ticket, under this configuration.
        case ticket(ApprovalTicket, DaemonConfig)
    }

    /// Makes the request for approval `request` needs and, attached, waits for it. An approved request starts
    /// under the configuration in force once it is approved, never the one it was asked under: a reload while it
    /// waited may ask for more approvals, or forbid it (review of approvals, F1); a break-glass run starts at once.
    static func approval(
        _ request: ExecParams, detach: Bool, client: ExecutionManager.QueueClient, context: RequestContext
    ) async throws -> Approval {
        guard let record = try await gate(request, context: context) else { return .none }
        if record.state == .breakGlass { return .ticket(ApprovalTicket(record: record), context.config) }
        if detach { return .detached(record.id) }
        let ticket = try await context.executions.approvals.awaitDecision(
            record, requestID: context.id, client: client, config: context.config)
        return .ticket(ticket, context.server.config.current)
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
