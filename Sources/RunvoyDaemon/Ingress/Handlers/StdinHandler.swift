import NIOCore
import RunvoyKit

/// `stdin`: bytes for, or the end of, the standard input of the execution attached to the connection, or bytes
/// for a running execution this connection holds the writer slot of (`attach` with `write`), while the caller may
/// still use its executor (a grant that ended ends the input too). There is no reply unless it fails.
struct StdinHandler: MethodHandler {
    static let method = Method.stdin.rawValue
    static let params = ParamsRule<StdinParams>.required("stdin needs params with data or eof")

    func handle(_ request: StdinParams, context: RequestContext) async throws -> Outcome<NoParams> {
        let attached = try target(request, context)
        // The end of input is always allowed: it gives the command nothing.
        if request.data != nil { try context.requireUse(of: attached) }
        var failure: RunvoyError?
        if let data = request.data {
            guard let bytes = Base64.decode(data) else {
                throw RunvoyError(.badRequest, "stdin data is not valid base64")
            }
            var buffer = context.sink.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            do {
                try await attached.writeStdin(buffer)
            } catch {
                failure = error
            }
        }
        // The end of input goes through even when the last bytes could not be written.
        if request.eof == true { await attached.closeStdin() }
        if let failure { throw failure }
        return .done
    }

    /// Where the bytes go: the execution named, when this connection is its attached writer; otherwise the one
    /// started on this connection.
    private func target(_ request: StdinParams, _ context: RequestContext) throws(RunvoyError) -> Execution {
        guard let executionID = request.executionId else {
            guard let attached = context.attached else {
                throw RunvoyError(.invalidState, "no execution is attached to this connection")
            }
            return attached
        }
        guard let found = context.executions.running(id: executionID),
            let connection = context.sink.channel.map({ ObjectIdentifier($0) }), found.writer.isHeld(by: connection)
        else {
            throw RunvoyError(
                .invalidState,
                "this connection is not attached to execution \(executionID) as its writer (attach with write)")
        }
        if request.eof == true {
            throw RunvoyError(
                .invalidArgument,
                "an attached writer cannot close the standard input of execution \(executionID); the client that started it does"
            )
        }
        return found
    }
}
