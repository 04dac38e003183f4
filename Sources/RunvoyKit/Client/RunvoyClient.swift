import Glibc
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
        do {
            try socket.sendAll(bytes)
        } catch {
            // runvoyd refuses a connection over its limits at once (`busy`, with a null id) and closes it, often
            // before the request is written: what it said is still there to read.
            if let refusal = refusalBeforeClose() { throw ClientError(remote: refusal) }
            throw error
        }
    }

    /// The error frame with a null id the daemon sent before it closed the connection, if there is one. Reads
    /// only what has already arrived (the daemon has closed its end).
    private func refusalBeforeClose() -> RunvoyError? {
        _ = fcntl(socket.fd, F_SETFL, fcntl(socket.fd, F_GETFL) | O_NONBLOCK)
        var found: RunvoyError?
        for _ in 0..<64 {
            try? reader.forEachFrame { payload in
                guard found == nil, let head = try? Frame.decode(FrameHead.self, from: payload), head.id == nil
                else { return }
                found = head.error
            }
            if found != nil { return found }
            guard let received = try? socket.receive(into: reader), received > 0 else { return nil }
        }
        return nil
    }

    /// Sends `method` and waits for the reply with the same id, returning its result or throwing its error.
    public func call<P: Codable & Sendable, R: Codable & Sendable>(
        _ method: Method, params: P?, result: R.Type
    ) throws(ClientError) -> R {
        try stream(method, params: params, result: result) { _ in }
    }

    /// Sends `method` and hands every event frame for it to `onEvent` (its JSON payload) until the final reply
    /// arrives, whose result is returned or whose error is thrown.
    public func stream<P: Codable & Sendable, R: Codable & Sendable>(
        _ method: Method, params: P?, result: R.Type, onEvent: (UnsafeRawBufferPointer) throws -> Void
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
                        let head = try Frame.decode(FrameHead.self, from: payload)
                        guard head.id == id || head.id == nil else { return }
                        if head.event != nil {
                            try onEvent(payload)
                        } else {
                            reply = try Frame.decode(Reply<R>.self, from: payload)
                        }
                    } catch {
                        failure = error
                    }
                }
            } catch {
                throw ClientError(.protocolViolation, "\(error)")
            }
            if let failure {
                if let clientError = failure as? ClientError { throw clientError }
                throw ClientError(.protocolViolation, "unreadable frame from runvoyd: \(failure)")
            }
            if let reply {
                if let error = reply.error { throw ClientError(remote: error) }
                if let value = reply.result { return value }
                throw ClientError(.protocolViolation, "reply has neither result nor error")
            }
            let n = try socket.receive(into: reader)
            if n == 0 {
                throw ClientError(.connectionLost, "runvoyd closed the connection before the end of the stream")
            }
        }
    }
}
