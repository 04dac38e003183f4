/// Text that came from the daemon or from another user, made safe to show on a terminal.
///
/// An argv, a user name or an error message can hold ESC, CR or other control characters that a terminal
/// obeys: `echo $'x\r\e[2Kid'` would otherwise be shown to an operator as `id`. Like `journalctl`, every
/// character a terminal could act on is written as a visible escape instead: `\t`, `\n` and `\r` by name, the
/// other C0 controls and DEL as `\xHH`, the C1 controls (U+0080-U+009F) and the Unicode characters that
/// reorder or separate lines (bidirectional overrides and isolates, U+2028, U+2029) as `\uHHHH`, and bytes
/// that are not UTF-8 as `\xHH`. Everything else, backslashes included, is left as it is, so ordinary text
/// reads the same and escaping is idempotent. Machine output (`--json`) and a command's own output are never
/// passed through here.
public enum TerminalText {
    /// `text` with every character a terminal could act on escaped. With `keepNewlines`, `\n` stays a line
    /// break (for messages of several lines); everything else is still escaped.
    public static func escape(_ text: String, keepNewlines: Bool = false) -> String {
        guard needsEscaping(text, keepNewlines: keepNewlines) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars { append(scalar, to: &out, keepNewlines: keepNewlines) }
        return out
    }

    /// `bytes` decoded as UTF-8, with invalid bytes written as `\xHH` and the rest escaped as `escape` does.
    public static func escape(bytes: [UInt8], keepNewlines: Bool = false) -> String {
        var out = ""
        var index = 0
        while index < bytes.count {
            let length = validSequenceLength(bytes, at: index)
            if length == 0 {
                out += hexByte(bytes[index])
                index += 1
                continue
            }
            let text = String(decoding: bytes[index..<index + length], as: UTF8.self)
            for scalar in text.unicodeScalars { append(scalar, to: &out, keepNewlines: keepNewlines) }
            index += length
        }
        return out
    }

    /// Whether a terminal could act on `scalar` (see the type's description).
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    private static func needsEscaping(_ text: String, keepNewlines: Bool) -> Bool {
        text.unicodeScalars.contains { isUnsafe($0) && !(keepNewlines && $0 == "\n") }
    }

    private static func append(_ scalar: Unicode.Scalar, to out: inout String, keepNewlines: Bool) {
        guard isUnsafe(scalar) else {
            out.unicodeScalars.append(scalar)
            return
        }
        switch scalar {
        case "\n": out += keepNewlines ? "\n" : "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x80: out += hexByte(UInt8(scalar.value))
        default:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
    }

    private static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
    }

    /// The length of the well-formed UTF-8 sequence at `index`, or 0 when the byte there does not start one.
    private static func validSequenceLength(_ bytes: [UInt8], at index: Int) -> Int {
        let first = bytes[index]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch first {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            high = 0x9F
        case 0xF0:
            length = 4
            low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            high = 0x8F
        default: return 0
        }
        guard index + length <= bytes.count else { return 0 }
        let second = bytes[index + 1]
        guard second >= low && second <= high else { return 0 }
        for offset in 2..<max(2, length) where bytes[index + offset] & 0xC0 != 0x80 { return 0 }
        return length
    }
}
