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
}
