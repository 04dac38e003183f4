import NIOCore
import RunvoyKit

/// Splits the inbound byte stream into frame payloads, rejecting an oversized length as soon as its header arrives.
struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let maxFrameBytes: Int

    mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= maxFrameBytes else { throw FrameTooLarge(length: Int(length), limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 && seenEOF {
            throw TruncatedFrame(received: buffer.readableBytes)
        }
        return nil
    }

    /// A header announced more than the limit.
    struct FrameTooLarge: Error, Equatable {
        var length: Int
        var limit: Int

        var wireError: RunvoyError {
            RunvoyError(.frameTooLarge, "frame of \(length) bytes exceeds the maximum of \(limit) bytes")
        }
    }

    /// The peer closed in the middle of a frame.
    struct TruncatedFrame: Error, Equatable {
        var received: Int
    }
}
