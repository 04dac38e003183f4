import RunvoyKit
import Testing

@testable import runvoyctl

/// How runvoyctl lays out the history: durations at each scale, an exit by signal, a word a terminal could act on,
/// and a table fitted to a width (its last column cut, then the columns named dropped, first ones first).
struct HistoryFormatTests {
    @Test(
        arguments: [
            (nil, "-"), (Int64(999), "999µs"), (1_499, "1ms"), (999_400, "999ms"), (1_500_000, "1.5s"),
            (9_990_000, "9.9s"), (10_000_000, "10s"), (90_999_999, "1m30s"), (3_661_000_000, "1h1m1s"),
        ] as [(Int64?, String)])
    func durationsAreShownAtTheirScale(usec: Int64?, shown: String) {
        #expect(HistoryFormat.duration(usec: usec) == shown)
    }

    @Test func anExitBySignalIsShownAsTheSignal() {
        var info = ListCommandFormatTests.info("a")
        info.exitCode = nil
        info.signal = 9
        #expect(HistoryFormat.exit(info) == "sig9")
        info.signal = nil
        #expect(HistoryFormat.exit(info) == "-")
    }

    @Test func aWordWithAControlCharacterAndAQuoteIsEscapedAsTheShellReadsIt() {
        #expect(HistoryFormat.command(["printf", "it's\u{1B}[2J\\"]) == #"printf $'it\'s\x1b[2J\\'"#)
        #expect(HistoryFormat.command(["echo", "a b", "it's", ""]) == #"echo 'a b' 'it'\''s' ''"#)
    }

    static let header = ["ID", "STATUS", "WHEN", "COMMAND"]
    static let rows = [
        [
            "01jdx7y3m1qk2f6e8v9w0zabcd", "succeeded", "2026-12-03T04:45:00.000000Z",
            "echo " + String(repeating: "x", count: 80),
        ],
        ["01jdx7y3m1qk2f6e8v9w0zabce", "failed", "2026-12-03T04:46:00.000000Z", "false"],
    ]

    @Test func withoutAWidthNothingIsCut() {
        let lines = HistoryFormat.table(Self.header, Self.rows, width: nil).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("ID                          STATUS     WHEN"))
        #expect(lines[1].hasSuffix("echo " + String(repeating: "x", count: 80)))
    }

    @Test func theLastColumnIsCutToTheWidth() {
        let lines = HistoryFormat.table(Self.header, Self.rows, width: 100, dropOrder: [2]).split(separator: "\n")
        #expect(lines.allSatisfy { $0.count <= 100 }, "\(lines)")
        #expect(lines[0].contains("WHEN"), "wide enough to keep every column: \(lines[0])")
        #expect(lines[1].count == 100 && lines[1].hasSuffix("xx…"), "\(lines[1])")
        #expect(lines[2].hasSuffix("false"), "a short cell is whole: \(lines[2])")
    }

    @Test func columnsAreDroppedInOrderWhenCuttingIsNotEnough() {
        let lines = HistoryFormat.table(Self.header, Self.rows, width: 60, dropOrder: [2, 1]).split(separator: "\n")
        #expect(lines.allSatisfy { $0.count <= 60 }, "\(lines)")
        #expect(!lines[0].contains("WHEN") && lines[0].contains("STATUS"), "the first named goes first: \(lines[0])")
        #expect(lines[1].hasSuffix("…"))
        let narrow = HistoryFormat.table(Self.header, Self.rows, width: 40, dropOrder: [2, 1]).split(separator: "\n")
        #expect(narrow[0] == "ID                          COMMAND", "\(narrow[0])")
        // The last column keeps 8 characters at least, even past the width.
        let tiny = HistoryFormat.table(Self.header, Self.rows, width: 10, dropOrder: [2, 1]).split(separator: "\n")
        #expect(tiny[1] == "01jdx7y3m1qk2f6e8v9w0zabcd  echo xx…", "\(tiny[1])")
    }
}
