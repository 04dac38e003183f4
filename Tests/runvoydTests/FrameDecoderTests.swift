import NIOCore
import NIOEmbedded
import PropertyBased
import RunvoyKit
import Testing

@testable import RunvoyDaemon

struct FrameDecoderTests {
    static func stream(_ payloads: [[UInt8]]) -> [UInt8] {
        payloads.flatMap { Frame.header(length: $0.count) + $0 }
    }

    @Test func anySplitOfTheByteStreamDecodesTheSameFrames() async throws {
        let payloads = Gen<UInt8>.value().array(of: 0...100).array(of: 0...10)
        let splits = Gen.int(in: 0...2000).array(of: 0...30)
        await propertyCheck(count: 200, input: payloads, splits) { payloads, splits in
            let bytes = Self.stream(payloads)
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
            var cuts = splits.map { $0 % (bytes.count + 1) }.sorted()
            cuts.append(bytes.count)
            var offset = 0
            var decoded: [[UInt8]] = []
            for cut in cuts where cut >= offset {
                var buffer = channel.allocator.buffer(capacity: cut - offset)
                buffer.writeBytes(bytes[offset..<cut])
                offset = cut
                try? channel.writeInbound(buffer)
                while let frame = try? channel.readInbound(as: ByteBuffer.self) {
                    decoded.append(Array(frame.readableBytesView))
                }
            }
            #expect(decoded == payloads)
            _ = try? channel.finish()
        }
    }

    @Test func anOversizedHeaderIsRejectedBeforeThePayloadArrives() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
        var buffer = channel.allocator.buffer(capacity: 4)
        buffer.writeInteger(UInt32(0x8000_0000))
        #expect(throws: FrameDecoder.FrameTooLarge(length: 0x8000_0000, limit: 1024)) {
            try channel.writeInbound(buffer)
        }
    }

    @Test func garbageThatLooksLikeAHugeHeaderIsRejected() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1 << 20)))
        var buffer = channel.allocator.buffer(capacity: 16)
        buffer.writeString("GET / HTTP/1.1\r\n")
        #expect(throws: FrameDecoder.FrameTooLarge.self) { try channel.writeInbound(buffer) }
    }

    @Test func aFrameCutOffByEOFIsReported() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
        var buffer = channel.allocator.buffer(capacity: 8)
        buffer.writeInteger(UInt32(10))
        buffer.writeString("abc")
        try channel.writeInbound(buffer)
        #expect(throws: FrameDecoder.TruncatedFrame(received: 7)) { _ = try channel.finish() }
    }

    @Test func exactlyTheMaximumIsAccepted() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 16)))
        var buffer = channel.allocator.buffer(capacity: 20)
        buffer.writeInteger(UInt32(16))
        buffer.writeBytes([UInt8](repeating: 0x41, count: 16))
        try channel.writeInbound(buffer)
        let frame = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(frame.readableBytes == 16)
    }
}
