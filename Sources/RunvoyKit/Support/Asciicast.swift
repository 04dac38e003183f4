/// Writes a recording as asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2): a header object on the
/// first line, then one `[time, "o", data]` array per line, `time` in seconds since the start and `data` text.
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
        var all = carry + bytes
        let keep = Self.incompleteSuffix(all)
        carry = Array(all.suffix(keep))
        all.removeLast(keep)
        guard !all.isEmpty else { return nil }
        lastUsec = max(lastUsec, tUsec)
        return event(String(decoding: all, as: UTF8.self))
    }

    /// What is left at the end of the recording (an incomplete sequence, as U+FFFD), or nil.
    public mutating func finish() -> String? {
        guard !carry.isEmpty else { return nil }
        defer { carry = [] }
        return event(String(decoding: carry, as: UTF8.self))
    }

    private func event(_ text: String) -> String {
        "[" + Self.seconds(Double(lastUsec) / 1_000_000) + ", \"o\", " + JSONText.quoted(text) + "]\n"
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
