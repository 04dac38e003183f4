#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A blocking client for simple request/reply exchanges with runvoyd.
public final class RunvoyClient {
    public let socket: UnixSocket
    public let reader: FrameReader
    private var nextID: Int64 = 1

    /// Connects to the daemon's socket.
    public init(socketPath: String, maxFrameBytes: Int = RunvoyProtocol.defaultMaxFrameBytes * 64) throws(ClientError) {
        self.socket = try UnixSocket(connectingTo: socketPath)
        self.reader = FrameReader(maxFrameBytes: maxFrameBytes)
    }

    /// Allocates a request id.
    public func makeID() -> RequestID {
        defer { nextID += 1 }
        return .number(nextID)
    }

    /// Sends a request frame.
    public func send<P: Codable & Sendable>(_ request: Request<P>) throws(ClientError) {
        let bytes: [UInt8]
        do {
            bytes = try Frame.encode(request)
        } catch {
            throw ClientError(.io, "cannot encode request: \(error)")
        }
        try socket.sendAll(bytes)
    }

    /// Sends `method` and waits for the reply with the same id, returning its result or throwing its error.
    public func call<P: Codable & Sendable, R: Codable & Sendable>(
        _ method: Method, params: P?, result: R.Type
    ) throws(ClientError) -> R {
        let id = makeID()
        try send(Request(id: id, method: method, params: params))
        while true {
            var reply: Reply<R>?
            var failure: (any Error)?
            do {
                try reader.forEachFrame { payload in
                    guard reply == nil, failure == nil else { return }
                    do {
                        let decoded = try Frame.decode(Reply<R>.self, from: payload)
                        if decoded.id == id || decoded.id == nil { reply = decoded }
                    } catch {
                        failure = error
                    }
                }
            } catch {
                throw ClientError(.protocolViolation, "\(error)")
            }
            if let failure { throw ClientError(.protocolViolation, "unreadable reply from runvoyd: \(failure)") }
            if let reply {
                if let error = reply.error { throw ClientError(remote: error) }
                if let value = reply.result { return value }
                throw ClientError(.protocolViolation, "reply has neither result nor error")
            }
            let n = try socket.receive(into: reader)
            if n == 0 { throw ClientError(.connectionLost, "runvoyd closed the connection without replying") }
        }
    }
}
