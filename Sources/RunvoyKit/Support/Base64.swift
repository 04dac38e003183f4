/// Standard base64 (RFC 4648, with padding) over raw buffers, for output frames on the hot path.
public enum Base64 {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = UInt8(index) }
        return table
    }()

    /// The encoded length of `count` bytes.
    @inlinable
    public static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Two output characters for every 12-bit value, so the hot loop does half the lookups.
    private static let pairs: [UInt16] = (0..<4096).map { value in
        UInt16(alphabet[value >> 6]) | UInt16(alphabet[value & 0x3F]) << 8
    }

    /// Encodes `source` into `destination`, which must hold `encodedLength(source.count)` bytes.
    /// Returns the number of bytes written.
    public static func encode(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int
    {
        precondition(destination.count >= encodedLength(source.count))
        guard source.count > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return 0 }
        let count = source.count
        var i = 0
        var o = 0
        pairs.withUnsafeBufferPointer { table in
            // 6 input bytes -> 8 output bytes per step, reading 8 bytes at a time while that stays in bounds.
            while i + 8 <= count {
                let x = UInt64(bigEndian: src.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let a = UInt64(table[Int(truncatingIfNeeded: x >> 52 & 0xFFF)])
                let b = UInt64(table[Int(truncatingIfNeeded: x >> 40 & 0xFFF)])
                let c = UInt64(table[Int(truncatingIfNeeded: x >> 28 & 0xFFF)])
                let d = UInt64(table[Int(truncatingIfNeeded: x >> 16 & 0xFFF)])
                dst.storeBytes(of: a | b << 16 | c << 32 | d << 48, toByteOffset: o, as: UInt64.self)
                i += 6
                o += 8
            }
        }
        return alphabet.withUnsafeBufferPointer { table in
            let bytes = src.assumingMemoryBound(to: UInt8.self)
            let out = dst.assumingMemoryBound(to: UInt8.self)
            while i + 3 <= count {
                let value = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                out[o] = table[Int(value >> 18 & 0x3F)]
                out[o + 1] = table[Int(value >> 12 & 0x3F)]
                out[o + 2] = table[Int(value >> 6 & 0x3F)]
                out[o + 3] = table[Int(value & 0x3F)]
                i += 3
                o += 4
            }
            let rest = count - i
            if rest > 0 {
                let b0 = UInt32(bytes[i])
                let b1 = rest == 2 ? UInt32(bytes[i + 1]) : 0
                let value = b0 << 16 | b1 << 8
                out[o] = table[Int(value >> 18 & 0x3F)]
                out[o + 1] = table[Int(value >> 12 & 0x3F)]
                out[o + 2] = rest == 2 ? table[Int(value >> 6 & 0x3F)] : UInt8(ascii: "=")
                out[o + 3] = UInt8(ascii: "=")
                o += 4
            }
            return o
        }
    }

    /// Encodes bytes to a base64 string.
    public static func encode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let input = Array(bytes)
        return input.withUnsafeBytes { source in
            String(unsafeUninitializedCapacity: encodedLength(source.count)) { buffer in
                encode(source, into: UnsafeMutableRawBufferPointer(buffer))
            }
        }
    }

    /// The largest decoded length of `count` base64 bytes.
    @inlinable
    public static func maxDecodedLength(_ count: Int) -> Int { count / 4 * 3 + 3 }

    /// Per position in a quad, each character's 6 bits already shifted into place; 0xFF000000 marks an
    /// invalid character, so one OR over four lookups both assembles and validates the quad.
    private static let shifted: [UInt32] = {
        var table = [UInt32](repeating: 0xFF00_0000, count: 4 * 256)
        for (index, char) in alphabet.enumerated() {
            for position in 0..<4 {
                table[position * 256 + Int(char)] = UInt32(index) << UInt32(18 - 6 * position)
            }
        }
        return table
    }()

    /// Decodes `source` into `destination` (at least `maxDecodedLength(source.count)` bytes).
    /// Returns the number of bytes written, or nil when `source` is not valid padded base64.
    public static func decode(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int?
    {
        guard source.count % 4 == 0 else { return nil }
        guard source.count > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return 0 }
        precondition(destination.count >= maxDecodedLength(source.count))
        let bytes = src.assumingMemoryBound(to: UInt8.self)
        let lastQuad = source.count - 4
        var i = 0
        var o = 0
        let valid: Bool = shifted.withUnsafeBufferPointer { table in
            var bad: UInt32 = 0
            // Every quad but the last: 4 lookups, one 4-byte store of which 3 bytes count.
            while i < lastQuad {
                let w =
                    table[Int(bytes[i])] | table[256 + Int(bytes[i + 1])] | table[512 + Int(bytes[i + 2])]
                    | table[768 + Int(bytes[i + 3])]
                bad |= w
                let out = (w >> 16 & 0xFF) | (w & 0xFF00) | (w & 0xFF) << 16
                dst.storeBytes(of: out, toByteOffset: o, as: UInt32.self)
                i += 4
                o += 3
            }
            return bad & 0xFF00_0000 == 0
        }
        guard valid else { return nil }
        let out = dst.assumingMemoryBound(to: UInt8.self)
        let pad = (bytes[i + 3] == UInt8(ascii: "=") ? 1 : 0) + (bytes[i + 2] == UInt8(ascii: "=") ? 1 : 0)
        if pad == 2 && bytes[i + 3] != UInt8(ascii: "=") { return nil }
        return decodeTable.withUnsafeBufferPointer { table -> Int? in
            let a = table[Int(bytes[i])]
            let b = table[Int(bytes[i + 1])]
            let c = pad >= 2 ? 0 : table[Int(bytes[i + 2])]
            let d = pad >= 1 ? 0 : table[Int(bytes[i + 3])]
            if (a | b | c | d) & 0xC0 != 0 { return nil }
            let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            out[o] = UInt8(truncatingIfNeeded: value >> 16)
            o += 1
            if pad < 2 {
                out[o] = UInt8(truncatingIfNeeded: value >> 8)
                o += 1
            }
            if pad < 1 {
                out[o] = UInt8(truncatingIfNeeded: value)
                o += 1
            }
            return o
        }
    }

    /// Decodes a base64 string, or nil when it is not valid padded base64.
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { utf8 -> [UInt8]? in
            let source = UnsafeRawBufferPointer(utf8)
            var failed = false
            let bytes = [UInt8](unsafeUninitializedCapacity: maxDecodedLength(source.count)) { buffer, count in
                if let n = decode(source, into: UnsafeMutableRawBufferPointer(buffer)) {
                    count = n
                } else {
                    failed = true
                    count = 0
                }
            }
            return failed ? nil : bytes
        }
    }
}
