import RunvoyKit

/// `signal`: a signal for the execution attached to the connection, or for a running one by id (which takes
/// the right to kill it).
struct SignalHandler: MethodHandler {
    static let method = Method.signal.rawValue
    static let params = ParamsRule<SignalParams>.required("signal needs params with a signal")

    func handle(_ request: SignalParams, context: RequestContext) async throws -> Outcome<SignalResult> {
        guard let number = SignalName.parse(request.signal) else {
            throw RunvoyError(.invalidArgument, "unknown signal '\(request.signal)'")
        }
        let target: Execution
        if let executionID = request.executionId {
            target = try running(executionID, context)
        } else {
            guard let attached = context.attached else {
                throw RunvoyError(.invalidState, "no execution is attached to this connection")
            }
            target = attached
            // Frames are handled in order, and input the client sent before this signal must reach the command
            // first; a signal by id (another connection, as runvoyctl's Ctrl-C) does not wait.
            await attached.stdinWritten()
        }
        let delivered = target.signal(number)
        if !delivered && request.executionId == nil && target.isFinished {
            throw RunvoyError(.invalidState, "execution \(target.id) has ended")
        }
        return .result(SignalResult(signal: number, delivered: delivered))
    }

    /// The running execution `executionID`, when the caller may signal it. One the caller may not see is
    /// answered as one that does not run; the audit trail has why.
    private func running(_ executionID: String, _ context: RequestContext) throws -> Execution {
        let notRunning = RunvoyError(.invalidArgument, "no running execution \(executionID)")
        guard let found = context.executions.running(id: executionID) else { throw notRunning }
        let owner = found.caller.uid
        let refusal = RunvoyError(.permissionDenied, "execution \(executionID) was started by another user")
        guard Authorizer.mayView(context.caller, ownerUid: owner, context.config) else {
            throw context.denied(
                refusal, told: notRunning, fields: [("EXECUTION_ID", executionID), ("OWNER_UID", String(owner))])
        }
        guard Authorizer.mayKill(context.caller, ownerUid: owner, context.config) else {
            throw context.denied(refusal, fields: [("EXECUTION_ID", executionID)])
        }
        return found
    }
}
