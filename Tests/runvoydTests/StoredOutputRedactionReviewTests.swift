import Glibc
import NIOCore
import NIOEmbedded
import Testing

@testable import RunvoyDaemon
@testable import RunvoyStore

/// Security review of 076ac7e (docs/REVIEW-echo.md), passing coverage: the stored copy of an output stream on an
/// executor with `record_input` (`StoredOutputRedaction`, fed by `RedactingHandler`).
struct StoredOutputRedactionReviewTests {
    static let secret = Array("stored-Secret-0815-value".utf8)
    static let set = RedactionSet(secrets: [(name: "tok", value: secret)])

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// No timing oracle in the stored copy: how much it releases after each read, and at the end, does not depend
    /// on whether the bytes it holds begin a secret (a caller feeding an echoing command watches `logs -f`).
    @Test func theStoredCopyReleasesAsMuchWhetherOrNotItsHeldBytesBeginASecret() {
        let filler = [UInt8](repeating: UInt8(ascii: "x"), count: 300)
        let reads: [[UInt8]] = [
            filler, Array(Self.secret.prefix(12)), Array("z".utf8), [UInt8](repeating: UInt8(ascii: "z"), count: 40),
        ]
        let other: [[UInt8]] = [
            filler, [UInt8](repeating: UInt8(ascii: "y"), count: 12), Array("z".utf8),
            [UInt8](repeating: UInt8(ascii: "z"), count: 40),
        ]
        let guessed = StoredOutputRedaction(Self.set)
        let plain = StoredOutputRedaction(Self.set)
        for (a, b) in zip(reads, other) {
            guessed.feed(ByteBuffer(bytes: a))
            plain.feed(ByteBuffer(bytes: b))
            #expect(guessed.take().count == plain.take().count)
        }
        guessed.finish()
        plain.finish()
        #expect(guessed.take().count == plain.take().count)
    }

    /// The live stream's idle release does not reach the stored copy, and a read error (a terminal master's EIO)
    /// ends the stored copy with the live one: the value written in two parts with a pause is stored redacted, and
    /// nothing of the output is lost.
    @Test func theLiveReleaseLeavesTheStoredCopyHeldAndAReadErrorEndsIt() throws {
        let stored = StoredOutputRedaction(Self.set)
        let channel = EmbeddedChannel(handler: RedactingHandler(Self.set, idleFlush: .zero, storage: stored))
        try channel.writeInbound(ByteBuffer(bytes: Array("out:".utf8) + Self.secret.prefix(10)))
        channel.embeddedEventLoop.run()
        var live: [UInt8] = []
        while let chunk = try channel.readInbound(as: ByteBuffer.self) { live += chunk.readableBytesView }
        #expect(Self.text(live) == "out:" + Self.text(Array(Self.secret.prefix(10))), "the live stream released it")
        #expect(stored.take().isEmpty, "the stored copy holds it")
        try channel.writeInbound(ByteBuffer(bytes: Array(Self.secret.dropFirst(10)) + Array(":end".utf8)))
        channel.pipeline.fireErrorCaught(IOError(errnoCode: EIO, reason: "read"))
        #expect(throws: (any Error).self) { try channel.throwIfErrorCaught() }
        #expect(Self.text(stored.take()) == "out:[secret:tok]:end")
        _ = try? channel.finish()
    }
}
