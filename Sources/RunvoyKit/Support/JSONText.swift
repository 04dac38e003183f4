/// Small helpers for JSON text built by hand on hot paths (frames, audit messages, what people read).
public enum JSONText {
    /// `strings` as a JSON array of string literals.
    public static func array(_ strings: [String]) -> String {
        "[" + strings.map(quoted).joined(separator: ",") + "]"
    }

    /// `value` as a JSON string literal, quotes included. Besides what JSON requires (quotes, backslashes, C0
    /// controls), every character that is invisible or moves other text when shown is escaped as `\uXXXX`: DEL and
    /// C1 controls, format characters (bidi overrides and isolates such as U+202E, zero-width characters, U+FEFF)
    /// and the line and paragraph separators. So an argv shown to an approver, or in an audit message, reads as
    /// what it is; any JSON reader still gets the same string back.
    public static func quoted(_ value: String) -> String {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where isHidden(scalar): out += escaped(scalar)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }

    /// Whether `scalar` is written as an escape: controls, format characters and line or paragraph separators.
    public static func isHidden(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }

    /// `\uXXXX`, or a surrogate pair of them above the Basic Multilingual Plane (RFC 8259 section 7).
    static func escaped(_ scalar: Unicode.Scalar) -> String {
        func unit(_ value: UInt32) -> String {
            let hex = String(value, radix: 16)
            return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
        guard scalar.value > 0xFFFF else { return unit(scalar.value) }
        let offset = scalar.value - 0x10000
        return unit(0xD800 + (offset >> 10)) + unit(0xDC00 + (offset & 0x3FF))
    }
}
