import Testing

@testable import RunvoyStore

/// Tar headers as other writers make them, and headers no writer makes.
struct TarFormatTests {
    @Test func anOldStyleHeaderWithPaddedNumbersAndAPrefixIsRead() throws {
        // A v7 header marks a plain file with a NUL type flag; numbers may be led by spaces or NULs.
        let header = TestArchive.header(name: "history.sqlite", size: 0) { block in
            block[156] = 0
            block.replaceSubrange(124..<136, with: Array("  \0 17 \0\0\0\0\0".utf8))
            block.replaceSubrange(345..<358, with: Array("runvoy-backup".utf8))
        }
        #expect(try TarFormat.parse(header[...]) == .init(name: "runvoy-backup/history.sqlite", size: 0o17))
    }

    @Test func aHeaderNoWriterMakesIsRefusedWithWhatIsWrong() {
        let name = "runvoy-backup/history.sqlite"
        let cases: [(edit: (inout [UInt8]) -> Void, error: TarFormat.HeaderError, explanation: String)] = [
            ({ $0[156] = UInt8(ascii: "5") }, .notAFile(typeflag: 0x35), "is not a plain file (tar type '5')"),
            ({ $0[156] = 0x7f }, .notAFile(typeflag: 0x7f), "is not a plain file (tar type 0x7f)"),
            ({ $0[124] = UInt8(ascii: "8") }, .badField("size"), "has an unreadable size field"),
            (
                { $0.replaceSubrange(124..<136, with: [UInt8](repeating: 0, count: 12)) }, .badField("size"),
                "has an unreadable size field"
            ),
            (
                { $0.replaceSubrange(124..<136, with: [0x80] + [UInt8](repeating: 0x7f, count: 11)) },
                .badField("size"),
                "has an unreadable size field"
            ),
        ]
        for (edit, error, explanation) in cases {
            let header = TestArchive.header(name: name, size: 0, edit)
            #expect(throws: error) { try TarFormat.parse(header[...]) }
            #expect(error.explanation == explanation)
        }
        // The checksum: one byte changed after it was computed, or no digits in its field.
        var changed = TestArchive.header(name: name, size: 0)
        changed[0] ^= 1
        var blank = TestArchive.header(name: name, size: 0)
        blank.replaceSubrange(148..<156, with: [UInt8](repeating: 32, count: 8))
        for header in [changed, blank] {
            #expect(throws: TarFormat.HeaderError.badChecksum) { try TarFormat.parse(header[...]) }
        }
        #expect(TarFormat.HeaderError.badChecksum.explanation == "fails its checksum")
    }
}
