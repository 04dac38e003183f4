/// Writes a recording as asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2): a header object on the
/// first line, then one `[time, "o", data]` array per line (`"i"` for recorded input), `time` in seconds since the
/// start and `data` text.
/// Output is bytes and a read can end inside a UTF-8 sequence: an incomplete sequence at the end of a chunk waits
/// for the next one, and bytes that are not UTF-8 become U+FFFD, so every event is valid JSON text.
public struct AsciicastWriter: Sendable {
    public struct Header: Sendable, Equatable {
        public var width: Int
        public var height: Int
        /// Seconds since the epoch when the recording began.
        public var timestamp: Int64?
        public var command: String?
        public var title: String?
        /// Longest pause a player keeps (`idle_time_limit`), in seconds.
        public var idleTimeLimit: Double?

        public init(
            width: Int, height: Int, timestamp: Int64? = nil, command: String? = nil, title: String? = nil,
            idleTimeLimit: Double? = nil
        ) {
            self.width = width
            self.height = height
            self.timestamp = timestamp
            self.command = command
            self.title = title
            self.idleTimeLimit = idleTimeLimit
        }
    }

    private var carry: [UInt8] = []
    private var inputCarry: [UInt8] = []
    private var lastUsec: Int64 = 0

    public init() {}

    /// The header line, newline included.
    public static func header(_ header: Header) -> String {
        var members = ["\"version\": 2", "\"width\": \(header.width)", "\"height\": \(header.height)"]
        if let timestamp = header.timestamp { members.append("\"timestamp\": \(timestamp)") }
        if let limit = header.idleTimeLimit { members.append("\"idle_time_limit\": \(seconds(limit))") }
        if let command = header.command { members.append("\"command\": " + JSONText.quoted(command)) }
        if let title = header.title { members.append("\"title\": " + JSONText.quoted(title)) }
        return "{" + members.joined(separator: ", ") + "}\n"
    }

    /// The event line for `bytes` printed `tUsec` after the start (newline included), or nil when they are only
    /// the start of a UTF-8 sequence. Times never go backwards.
    public mutating func output(_ bytes: [UInt8], tUsec: Int64) -> String? {
        Self.event("o", bytes, tUsec: tUsec, carry: &carry, lastUsec: &lastUsec)
    }

    /// The same for input the command was given (an `"i"` event), which has a UTF-8 carry of its own.
    public mutating func input(_ bytes: [UInt8], tUsec: Int64) -> String? {
        Self.event("i", bytes, tUsec: tUsec, carry: &inputCarry, lastUsec: &lastUsec)
    }

    private static func event(
        _ code: String, _ bytes: [UInt8], tUsec: Int64, carry: inout [UInt8], lastUsec: inout Int64
    ) -> String? {
        var all = carry + bytes
        let keep = incompleteSuffix(all)
        carry = Array(all.suffix(keep))
        all.removeLast(keep)
        guard !all.isEmpty else { return nil }
        lastUsec = max(lastUsec, tUsec)
        return line(code, String(decoding: all, as: UTF8.self), lastUsec)
    }

    /// What is left at the end of the recording (incomplete sequences, as U+FFFD), or nil.
    public mutating func finish() -> String? {
        var lines = ""
        if !inputCarry.isEmpty { lines += Self.line("i", String(decoding: inputCarry, as: UTF8.self), lastUsec) }
        if !carry.isEmpty { lines += Self.line("o", String(decoding: carry, as: UTF8.self), lastUsec) }
        carry = []
        inputCarry = []
        return lines.isEmpty ? nil : lines
    }

    private static func line(_ code: String, _ text: String, _ usec: Int64) -> String {
        "[" + seconds(Double(usec) / 1_000_000) + ", \"" + code + "\", " + JSONText.quoted(text) + "]\n"
    }

    /// Seconds with microsecond precision, as JSON.
    static func seconds(_ value: Double) -> String {
        let micros = Int64((value * 1_000_000).rounded())
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    /// How many bytes at the end of `bytes` begin a UTF-8 sequence that the next chunk may complete (0 to 3).
    static func incompleteSuffix(_ bytes: [UInt8]) -> Int {
        guard !bytes.isEmpty else { return 0 }
        for back in 1...min(3, bytes.count) {
            let byte = bytes[bytes.count - back]
            if byte & 0xC0 == 0x80 { continue }  // a continuation byte: look further back
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            return length > back && byte < 0xF8 ? back : 0
        }
        return 0
    }
}
