import PropertyBased
import RunvoyKit
import Testing

struct TerminalTextTests {
    @Test func controlCharactersBecomeVisibleEscapes() {
        #expect(TerminalText.escape("x\r\u{1b}[2Kid") == #"x\r\x1b[2Kid"#)
        #expect(TerminalText.escape("a\tb\nc") == #"a\tb\nc"#)
        #expect(TerminalText.escape("\u{0}\u{7}\u{7f}") == #"\x00\x07\x7f"#)
        #expect(TerminalText.escape("\u{85}\u{9b}31m") == #"\u0085\u009b31m"#)
        #expect(TerminalText.escape("abc\u{202e}fed\u{2066}\u{2028}") == #"abc\u202efed\u2066\u2028"#)
    }

    @Test func ordinaryTextIsLeftAlone() {
        for text in ["", "terraform plan -out=/tmp/x", "naïve café 日本語 🚀", #"C:\path\x41"#, "tab-free 'quoted'"] {
            #expect(TerminalText.escape(text) == text)
        }
    }

    @Test func newlinesMayStayInMessagesOfSeveralLines() {
        #expect(TerminalText.escape("one\ntwo\r\u{1b}", keepNewlines: true) == "one\ntwo\\r\\x1b")
    }

    @Test func invalidUTF8BytesAreWrittenAsHex() {
        #expect(TerminalText.escape(bytes: [0x61, 0xFF, 0x62, 0xC3]) == #"a\xffb\xc3"#)
        #expect(TerminalText.escape(bytes: Array("é\u{1b}".utf8)) == #"é\x1b"#)
        #expect(TerminalText.escape(bytes: [0xED, 0xA0, 0x80]) == #"\xed\xa0\x80"#)  // a surrogate: not UTF-8
        #expect(TerminalText.escape(bytes: [0xC2, 0x9B]) == #"\u009b"#)
    }

    @Test func theResultNeverHoldsWhatATerminalActsOnAndEscapingTwiceChangesNothing() async {
        await propertyCheck(count: 500, input: Gen<UInt8>.value().array(of: 0...64)) { bytes in
            let once = TerminalText.escape(bytes: bytes)
            #expect(!once.unicodeScalars.contains { TerminalText.isUnsafe($0) })
            #expect(TerminalText.escape(once) == once)
            let text = String(decoding: bytes, as: UTF8.self)
            let escaped = TerminalText.escape(text)
            #expect(!escaped.unicodeScalars.contains { TerminalText.isUnsafe($0) })
            #expect(TerminalText.escape(escaped) == escaped)
        }
    }
}
