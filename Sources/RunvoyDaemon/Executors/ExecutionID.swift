/// Execution ids: 26 characters of lower-case Crockford base32, a 48-bit millisecond timestamp then 80 random
/// bits (the ULID layout), so ids sort by start time and never repeat.
enum ExecutionID {
    private static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    static func make(milliseconds: UInt64) -> String {
        var rng = SystemRandomNumberGenerator()
        let random = (UInt128(rng.next() as UInt64) << 64 | UInt128(rng.next() as UInt64)) & ((1 << 80) - 1)
        let value = UInt128(milliseconds & ((1 << 48) - 1)) << 80 | random
        var chars = [UInt8](repeating: 0, count: 26)
        for index in 0..<26 {
            let shift = UInt128(125 - index * 5)
            chars[index] = alphabet[Int((value >> shift) & 0x1F)]
        }
        return String(decoding: chars, as: UTF8.self)
    }

    /// Whether `text` has the shape of an execution id.
    static func isValid(_ text: String) -> Bool {
        text.utf8.count == 26 && text.utf8.allSatisfy { alphabet.contains($0) }
    }

    /// The creation time an id holds (its first 48 bits, milliseconds since the epoch); nil when `text` is not an id.
    static func milliseconds(_ text: String) -> Int64? {
        guard isValid(text) else { return nil }
        var value: UInt64 = 0
        // The first ten characters are the top 50 of the 130 bits that 26 characters write: two zero bits above
        // the 128 of the id, then the 48 of the time.
        for char in text.utf8.prefix(10) {
            value = value << 5 | UInt64(alphabet.firstIndex(of: char) ?? 0)
        }
        return Int64(value & ((1 << 48) - 1))
    }
}
