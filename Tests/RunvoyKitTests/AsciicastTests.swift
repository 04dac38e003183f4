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
        let line = try #require(writer.output(Array("\u{1B}[1mhi\r\n".utf8), tUsec: 1_500_042))
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
        #expect(writer.output([UInt8(ascii: "a")] + euro.prefix(1), tUsec: 10) == "[0.000010, \"o\", \"a\"]\n")
        let second = try #require(writer.output(Array(euro.dropFirst()), tUsec: 20))
        #expect((try Self.json(second) as? [Any])?[2] as? String == "€")
        #expect(writer.finish() == nil)
    }

    @Test func bytesThatAreNotUTF8BecomeReplacementCharactersAndTimesNeverGoBack() throws {
        var writer = AsciicastWriter()
        _ = writer.output([0x41], tUsec: 5_000_000)
        let line = try #require(writer.output([0xFF, 0x42], tUsec: 4_000_000))
        let event = try #require(try Self.json(line) as? [Any])
        #expect(event[0] as? Double == 5.0)
        #expect(event[2] as? String == "\u{FFFD}B")
        #expect(writer.output([0xE2, 0x82], tUsec: 6_000_000) == nil)
        #expect(try #require(writer.finish()).contains("\u{FFFD}"))
    }

    @Test func aReplaySkipsWhatIsLongerThanTheMaximumPause() {
        var pacing = ReplayPacing(maxPauseUsec: 2_000_000)
        #expect(pacing.playbackUsec(100) == 100)
        #expect(pacing.playbackUsec(60_000_000) == 2_000_100)
        #expect(pacing.playbackUsec(60_500_000) == 2_500_100)
        var unlimited = ReplayPacing(maxPauseUsec: nil)
        #expect(unlimited.playbackUsec(60_000_000) == 60_000_000)
    }
}
