import NIOCore
import RunvoyKit

/// `stdin`: bytes for, or the end of, the standard input of the execution attached to the connection. There is
/// no reply unless it fails.
struct StdinHandler: MethodHandler {
    static let method = Method.stdin.rawValue
    static let params = ParamsRule<StdinParams>.required("stdin needs params with data or eof")

    func handle(_ request: StdinParams, context: RequestContext) async throws -> Outcome<NoParams> {
        guard let attached = context.attached else {
            throw RunvoyError(.invalidState, "no execution is attached to this connection")
        }
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
}
