import RunvoyKit

/// `kill`: a signal (TERM by default) for a running execution by id. Both what is sent and what is refused are
/// audited as `execution_kill`.
struct KillHandler: MethodHandler {
    static let method = Method.kill.rawValue
    static let params = ParamsRule<KillParams>.required("kill needs params with execution_id")

    func handle(_ params: KillParams, context: RequestContext) async throws -> Outcome<KillResult> {
        var fields =
            [("EXECUTION_ID", params.executionId)] + context.callerFields + [("SIGNAL", params.signal ?? "TERM")]
        // The audit trail's reason when the caller is told less (an execution it may not see is "no execution").
        var auditedReason: RunvoyError?
        do throws(RunvoyError) {
            guard let number = SignalName.parse(params.signal ?? "TERM") else {
                throw RunvoyError(.invalidArgument, "unknown signal '\(params.signal ?? "")'")
            }
            let execution = try running(params.executionId, context, fields: &fields, auditedReason: &auditedReason)
            guard Authorizer.mayKill(context.caller, ownerUid: execution.caller.uid, context.config) else {
                throw RunvoyError(.permissionDenied, "execution \(execution.id) was started by another user")
            }
            let delivered = execution.signal(number)
            context.auditor.recordBestEffort(
                AuditEvent(
                    .executionKill, message: "\(context.who) sent signal \(number) to execution \(execution.id)",
                    fields: fields + [("DECISION", "allow"), ("REASON", delivered ? "delivered" : "already ended")]))
            return .result(KillResult(executionId: execution.id, signal: number, delivered: delivered))
        } catch {
            guard error.code == .permissionDenied || error.code == .noSuchExecution else { throw error }
            let real = auditedReason ?? error
            throw Refusal(
                error: error,
                record: AuditEvent(
                    .executionKill, priority: 4,
                    message: "refused \(context.who) kill of \(params.executionId): \(real.message)",
                    fields: fields + [("DECISION", "deny"), ("REASON", real.description)]))
        }
    }

    /// The running execution `executionID`, if the caller may see it; its owner goes into `fields`.
    private func running(
        _ executionID: String, _ context: RequestContext, fields: inout [(String, String)],
        auditedReason: inout RunvoyError?
    ) throws(RunvoyError) -> Execution {
        let info: ExecutionInfo
        switch try context.lookUpExecution(executionID) {
        case .missing:
            throw RequestContext.noSuchExecution(executionID)
        case .hidden(let ownerUid):
            fields.append(("OWNER_UID", String(ownerUid)))
            auditedReason = RunvoyError(.permissionDenied, "execution \(executionID) was started by another user")
            throw RequestContext.noSuchExecution(executionID)
        case .visible(let found):
            info = found
        }
        guard let execution = context.executions.running(id: info.executionId) else {
            let hint = info.status == .queued ? "; it waits in the queue: use cancel" : ""
            throw RunvoyError(
                .invalidState, "execution \(info.executionId) is not running (\(info.status.rawValue))\(hint)")
        }
        fields.append(("OWNER_UID", String(execution.caller.uid)))
        return execution
    }
}
