import NIOCore

/// Answers one plain HTTP request on a metrics connection, then closes it: `GET /metrics` gets the exposition,
/// anything else an error status.
///
/// A client cannot hold more than a little of the daemon: the request head is read up to `maxRequestBytes` (past
/// that: 431) and must be whole within `headTimeout` of the connection's accept (one that connects and never
/// sends goes then), and the connection is closed `timeout` after it was accepted whatever it did, reply sent or
/// not (one that never reads goes then).
final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maxRequestBytes = 8192

    private let timeout: TimeAmount
    private let headTimeout: TimeAmount
    private let exposition: @Sendable () -> [UInt8]
    private var received: [UInt8] = []
    private var answered = false
    private var timer: Scheduled<Void>?
    private var headTimer: Scheduled<Void>?

    init(timeout: TimeAmount, headTimeout: TimeAmount, exposition: @escaping @Sendable () -> [UInt8]) {
        self.timeout = timeout
        self.headTimeout = min(headTimeout, timeout)
        self.exposition = exposition
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        headTimer = context.eventLoop.scheduleTask(in: headTimeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        headTimer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        var chunk = unwrapInboundIn(data)
        received += chunk.readBytes(length: chunk.readableBytes) ?? []
        if let response = Self.response(to: received, final: false, exposition: exposition) {
            answer(response, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client stopped sending before a whole request: answer what it sent, if anything can be.
        if case .some(.inputClosed) = event as? ChannelEvent, !answered {
            answer(Self.response(to: received, final: true, exposition: exposition) ?? [], context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func answer(_ response: [UInt8], context: ChannelHandlerContext) {
        answered = true
        headTimer?.cancel()
        received = []
        guard !response.isEmpty else { return context.close(promise: nil) }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: response))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// The response to the request in `bytes`, or nil while its head is incomplete (and not `final`).
    static func response(to bytes: [UInt8], final: Bool, exposition: () -> [UInt8]) -> [UInt8]? {
        guard let lineEnd = bytes.firstIndex(of: UInt8(ascii: "\n")), headComplete(bytes) || final else {
            if bytes.count > maxRequestBytes { return status(431, "Request Header Fields Too Large") }
            return final && !bytes.isEmpty ? status(400, "Bad Request") : (final ? [] : nil)
        }
        if bytes.count > maxRequestBytes { return status(431, "Request Header Fields Too Large") }
        let parts = String(decoding: bytes[..<lineEnd], as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\r" }
        )
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return status(400, "Bad Request") }
        guard parts[0] == "GET" || parts[0] == "HEAD" else { return status(405, "Method Not Allowed") }
        let path = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == "/metrics" || path == "/" else { return status(404, "Not Found") }
        let body = exposition()
        var head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + (parts[0] == "HEAD" ? [] : body)
    }

    /// Whether `bytes` hold a whole request head (a blank line ends it).
    private static func headComplete(_ bytes: [UInt8]) -> Bool {
        var previous: UInt8 = 0
        var beforeThat: UInt8 = 0
        for byte in bytes {
            if byte == UInt8(ascii: "\n") && (previous == UInt8(ascii: "\n") || (previous == 13 && beforeThat == 10)) {
                return true
            }
            beforeThat = previous
            previous = byte
        }
        return false
    }

    private static func status(_ code: Int, _ reason: String) -> [UInt8] {
        let body = "\(code) \(reason)\n"
        return Array(
            "HTTP/1.1 \(code) \(reason)\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                .utf8)
    }
}
