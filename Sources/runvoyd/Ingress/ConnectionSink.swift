import NIOCore
import RunvoyKit

/// Routes an execution's output and events to the connection that started it.
struct ConnectionSink: OutputSink {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let allocator: ByteBufferAllocator
    let idLiteral: [UInt8]

    init(outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, allocator: ByteBufferAllocator, requestID: RequestID?) {
        self.outbound = outbound
        self.allocator = allocator
        self.idLiteral = Array((requestID?.jsonLiteral ?? "null").utf8)
    }

    func output(_ stream: OutputStreamKind, _ chunk: ByteBuffer) async throws {
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
