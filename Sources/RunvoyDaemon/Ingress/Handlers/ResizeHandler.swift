import RunvoyKit

/// `resize`: a new window size for the terminal of the execution attached to the connection, or of a running one
/// by id, which only the user who started it may resize (a window size is input: it makes the command redraw).
struct ResizeHandler: MethodHandler {
    static let method = Method.resize.rawValue
    static let params = ParamsRule<TerminalParams>.required("resize needs params with rows and cols")

    func handle(_ request: TerminalParams, context: RequestContext) async throws -> Outcome<ResizeResult> {
        guard let size = TerminalSize(rows: request.rows, cols: request.cols) else {
            throw RunvoyError(.invalidArgument, "a terminal has 1 to 10000 rows and columns")
        }
        let target: Execution
        if let executionID = request.executionId {
            target = try owned(executionID, context)
        } else {
            guard let attached = context.attached else {
                throw RunvoyError(.invalidState, "no execution is attached to this connection")
            }
            target = attached
        }
        guard target.isTerminal else {
            throw RunvoyError(.invalidState, "execution \(target.id) has no terminal")
        }
        return .result(ResizeResult(rows: request.rows, cols: request.cols, applied: target.resize(size)))
    }

    /// The running execution `executionID`, when the caller started it. Another user's is answered as one that
    /// does not run, whoever may see it; the audit trail has why.
    private func owned(_ executionID: String, _ context: RequestContext) throws -> Execution {
        let notRunning = RunvoyError(.invalidArgument, "no running execution \(executionID)")
        guard let found = context.executions.running(id: executionID) else { throw notRunning }
        guard found.caller.uid == context.caller.uid else {
            throw context.denied(
                RunvoyError(.permissionDenied, "execution \(executionID) was started by another user"),
                told: notRunning,
                fields: [("EXECUTION_ID", executionID), ("OWNER_UID", String(found.caller.uid))])
        }
        return found
    }
}
