import Foundation
import Testing

@testable import RunvoyKit

/// asciicast v2 as its documentation describes it (docs.asciinema.org/manual/asciicast/v2): a header object with
/// `version` 2, `width` and `height`, then `[time, "o", text]` events with times in seconds since the start.
struct AsciicastTests {
    static func json(_ line: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed])
    }

    @Test func theHeaderHasTheRequiredMembersAndTheOptionalOnesGiven() throws {
        let line = AsciicastWriter.header(
            .init(width: 132, height: 43, timestamp: 1_700_000_000, command: "sh -c \"top\"", idleTimeLimit: 2.5))
        #expect(line.hasSuffix("}\n"))
        let header = try #require(try Self.json(line) as? [String: Any])
        #expect(header["version"] as? Int == 2)
        #expect(header["width"] as? Int == 132)
        #expect(header["height"] as? Int == 43)
        #expect(header["timestamp"] as? Int == 1_700_000_000)
        #expect(header["idle_time_limit"] as? Double == 2.5)
        #expect(header["command"] as? String == "sh -c \"top\"")
    }

    @Test func eventsAreTimeTypeAndTextWithSecondsSinceTheStart() throws {
        var writer = AsciicastWriter()
        let written = writer.output(Array("\u{1B}[1mhi\r\n".utf8), tUsec: 1_500_042)
        let line = try #require(written)
        let event = try #require(try Self.json(line) as? [Any])
        #expect(event.count == 3)
        #expect(event[0] as? Double == 1.500042)
        #expect(event[1] as? String == "o")
        #expect(event[2] as? String == "\u{1B}[1mhi\r\n")
    }

    /// A read can end inside a UTF-8 sequence: the event waits for the rest, so the text is whole.
    @Test func aCharacterSplitAcrossChunksStaysWhole() throws {
        var writer = AsciicastWriter()
        let euro = Array("€".utf8)
        let first = writer.output([UInt8(ascii: "a")] + euro.prefix(1), tUsec: 10)
        #expect(first == "[0.000010, \"o\", \"a\"]\n")
        let rest = writer.output(Array(euro.dropFirst()), tUsec: 20)
        let second = try #require(rest)
        #expect((try Self.json(second) as? [Any])?[2] as? String == "€")
        let end = writer.finish()
        #expect(end == nil)
    }

    /// What is held back for the next chunk: only the start of a sequence that more bytes can complete.
    @Test(
        arguments: [
            ([], 0), ([0x61], 0), ([0xC3], 1), ([0x61, 0xE2, 0x82], 2), ([0xF0, 0x9F, 0x98], 3),
            ([0xE2, 0x82, 0xAC], 0),
            ([0x80, 0x80, 0x80], 0), ([0xF8], 0),
        ] as [([UInt8], Int)])
    func anIncompleteSequenceAtTheEndIsHeldBack(bytes: [UInt8], held: Int) {
        #expect(AsciicastWriter.incompleteSuffix(bytes) == held)
    }

    @Test func bytesThatAreNotUTF8BecomeReplacementCharactersAndTimesNeverGoBack() throws {
        var writer = AsciicastWriter()
        _ = writer.output([0x41], tUsec: 5_000_000)
        let written = writer.output([0xFF, 0x42], tUsec: 4_000_000)
        let line = try #require(written)
        let event = try #require(try Self.json(line) as? [Any])
        #expect(event[0] as? Double == 5.0)
        #expect(event[2] as? String == "\u{FFFD}B")
        let incomplete = writer.output([0xE2, 0x82], tUsec: 6_000_000)
        #expect(incomplete == nil)
        let end = writer.finish()
        #expect(end?.contains("\u{FFFD}") == true)
    }

    @Test func aReplaySkipsWhatIsLongerThanTheMaximumPause() {
        var pacing = ReplayPacing(maxPauseUsec: 2_000_000)
        let times = [100, 60_000_000, 60_500_000].map { pacing.playbackUsec($0) }
        #expect(times == [100, 2_000_100, 2_500_100])
        var unlimited = ReplayPacing(maxPauseUsec: nil)
        let time = unlimited.playbackUsec(60_000_000)
        #expect(time == 60_000_000)
    }

    /// Recorded input (issue 16, item 2) is an `"i"` event, with a UTF-8 carry of its own, and times stay in
    /// order across both kinds.
    @Test func inputIsAnIEventWithItsOwnCarry() throws {
        var writer = AsciicastWriter()
        let euro = Array("€".utf8)
        #expect(writer.input([euro[0]], tUsec: 100) == nil)
        let written = writer.output(Array("a".utf8), tUsec: 200)
        let output = try #require(written)
        #expect(try Self.json(output) as? [AnyHashable] == [0.0002, "o", "a"])
        let typed = writer.input(Array(euro[1...]) + Array("x".utf8), tUsec: 150)
        let input = try #require(typed)
        #expect(try Self.json(input) as? [AnyHashable] == [0.0002, "i", "€x"])
        #expect(writer.input([0xE2], tUsec: 300) == nil)
        #expect(writer.output([0xC3], tUsec: 300) == nil)
        let finished = writer.finish()
        let rest = try #require(finished)
        #expect(rest == "[0.000200, \"i\", \"\u{FFFD}\"]\n[0.000200, \"o\", \"\u{FFFD}\"]\n", "\(rest)")
        #expect(writer.finish() == nil)
    }
}
