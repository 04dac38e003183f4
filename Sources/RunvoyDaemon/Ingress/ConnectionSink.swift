import NIOCore
import RunvoyKit

/// Routes an execution's output and events to the connection that started it.
struct ConnectionSink: OutputSink {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let allocator: ByteBufferAllocator
    /// The connection's channel: closed when the daemon gives up on a client that does not read.
    let channel: (any Channel)?
    let idLiteral: [UInt8]
    /// Send output as binary frames rather than base64 events (the client asked with `binary_output`).
    private(set) var binary: Bool

    init(
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, allocator: ByteBufferAllocator, requestID: RequestID?,
        binary: Bool = false, channel: (any Channel)? = nil
    ) {
        self.outbound = outbound
        self.allocator = allocator
        self.channel = channel
        self.idLiteral = Array((requestID?.jsonLiteral ?? "null").utf8)
        self.binary = binary
    }

    func output(_ stream: OutputStreamKind, _ chunk: ByteBuffer) async throws {
        if binary {
            // The chunk goes out as read from the pipe: no copy, no encoding.
            var header = allocator.buffer(capacity: 5)
            header.writeBytes(BinaryOutputFrame.header(stream: stream, count: chunk.readableBytes))
            try await outbound.write(contentsOf: [header, chunk])
            return
        }
        let size = 4 + OutputFrame.payloadLength(idLiteral: idLiteral, count: chunk.readableBytes)
        var frame = allocator.buffer(capacity: size)
        let idLiteral = idLiteral
        chunk.withUnsafeReadableBytes { data in
            frame.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { destination in
                OutputFrame.writeFrame(stream: stream, idLiteral: idLiteral, data: data, into: destination)
            }
        }
        try await outbound.write(frame)
    }

    /// The same connection, for the events of request `id`.
    func replying(to id: RequestID) -> ConnectionSink {
        ConnectionSink(outbound: outbound, allocator: allocator, requestID: id, binary: binary, channel: channel)
    }

    /// The same connection and request, with output sent as binary frames or not.
    func binaryOutput(_ binary: Bool) -> ConnectionSink {
        var sink = self
        sink.binary = binary
        return sink
    }

    func abandon() {
        channel?.close(promise: nil)
    }

    func exit(_ event: ExitEvent) async throws {
        try await send(event)
    }

    func send<T: Encodable>(_ value: T) async throws {
        let bytes = try Frame.encode(value)
        var frame = allocator.buffer(capacity: bytes.count)
        frame.writeBytes(bytes)
        try await outbound.write(frame)
    }
}
