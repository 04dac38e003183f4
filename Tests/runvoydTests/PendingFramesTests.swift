import Glibc
import NIOCore
import NIOEmbedded
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// A user's budget of unfinished large frames, across its connections: held while a frame is incomplete, given
/// back when it completes or its connection closes, and a frame beyond it is refused.
struct PendingFramesTests {
    static func channel(_ pending: PendingFrames, uid: uid_t = 1000, limit: Int) -> EmbeddedChannel {
        let budget = FrameDecoder.Budget(pending: pending, uid: uid, limit: limit)
        return EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1 << 20, budget: budget)))
    }

    static func part(_ channel: EmbeddedChannel, length: Int, bytes: Int) throws {
        var buffer = channel.allocator.buffer(capacity: 4 + bytes)
        buffer.writeBytes(Frame.header(length: length))
        buffer.writeBytes([UInt8](repeating: 0x20, count: bytes))
        try channel.writeInbound(buffer)
    }

    @Test func anUnfinishedLargeFrameHoldsItsLengthUntilItCompletes() throws {
        let pending = PendingFrames()
        let channel = Self.channel(pending, limit: 1 << 20)
        try Self.part(channel, length: 500_000, bytes: 1000)
        #expect(pending.held(by: 1000) == 500_000)
        var rest = channel.allocator.buffer(capacity: 499_000)
        rest.writeBytes([UInt8](repeating: 0x20, count: 499_000))
        try channel.writeInbound(rest)
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 500_000)
        #expect(pending.held(by: 1000) == 0)
        _ = try channel.finish()
    }

    @Test func aClosedConnectionGivesItsFrameBack() throws {
        let pending = PendingFrames()
        do {
            let channel = Self.channel(pending, limit: 1 << 20)
            try Self.part(channel, length: 800_000, bytes: 10)
            #expect(pending.held(by: 1000) == 800_000)
            _ = try? channel.finish()
        }
        #expect(pending.held(by: 1000) == 0)
    }

    @Test func beyondTheBudgetAFrameIsRefusedAndOtherUsersAreNotAffected() throws {
        let pending = PendingFrames()
        let first = Self.channel(pending, limit: 1 << 20)
        try Self.part(first, length: 700_000, bytes: 10)
        let second = Self.channel(pending, limit: 1 << 20)
        #expect(throws: FrameDecoder.PendingBudgetExceeded.self) { try Self.part(second, length: 700_000, bytes: 10) }
        // Small frames are not counted, and another user has a budget of its own.
        let small = Self.channel(pending, limit: 1 << 20)
        try Self.part(small, length: 1000, bytes: 10)
        let other = Self.channel(pending, uid: 1001, limit: 1 << 20)
        try Self.part(other, length: 700_000, bytes: 10)
        #expect(pending.held(by: 1000) == 700_000 && pending.held(by: 1001) == 700_000)
        _ = try? first.finish()
        _ = try? second.finish()
        _ = try? small.finish()
        _ = try? other.finish()
    }
}
