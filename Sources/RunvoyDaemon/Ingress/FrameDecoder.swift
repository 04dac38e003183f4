import Glibc
import NIOCore
import RunvoyKit

/// Splits the inbound byte stream into frame payloads, rejecting an oversized length as soon as its header arrives.
struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let maxFrameBytes: Int
    /// Whose budget of unfinished large frames this connection's count against; nil: no budget.
    var budget: Budget?
    /// What the frame being received holds of that budget.
    private var reservation: PendingFrames.Reservation?

    /// A user's budget of unfinished large frames (`limits.max_pending_bytes_per_user`).
    struct Budget: Sendable {
        let pending: PendingFrames
        let uid: uid_t
        let limit: Int
    }

    init(maxFrameBytes: Int, budget: Budget? = nil) {
        self.maxFrameBytes = maxFrameBytes
        self.budget = budget
    }

    mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= maxFrameBytes else { throw FrameTooLarge(length: Int(length), limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else {
            try reserve(Int(length))
            return nil
        }
        reservation = nil
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }

    /// A large frame that is not complete holds its length of its user's budget until it is.
    private mutating func reserve(_ length: Int) throws {
        guard let budget, length > PendingFrames.threshold, reservation == nil else { return }
        guard let reservation = budget.pending.reserve(budget.uid, length, limit: budget.limit) else {
            throw PendingBudgetExceeded(limit: budget.limit)
        }
        self.reservation = reservation
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

    /// The frame would take its user's unfinished large frames past their budget.
    struct PendingBudgetExceeded: Error, Equatable {
        var limit: Int

        var wireError: RunvoyError {
            RunvoyError(
                .busy,
                "your connections hold \(limit) bytes of unfinished requests, the most one user may (limits.max_pending_bytes_per_user); closing"
            )
        }
    }

    /// The peer closed in the middle of a frame.
    struct TruncatedFrame: Error, Equatable {
        var received: Int
    }
}
