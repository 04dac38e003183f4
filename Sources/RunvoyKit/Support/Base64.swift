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

    /// Encodes `source` into `destination`, which must hold `encodedLength(source.count)` bytes.
    /// Returns the number of bytes written.
    public static func encode(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int
    {
        precondition(destination.count >= encodedLength(source.count))
        guard source.count > 0 else { return 0 }
        return alphabet.withUnsafeBufferPointer { table in
            let src = source.bindMemory(to: UInt8.self)
            let dst = destination.bindMemory(to: UInt8.self)
            var i = 0
            var o = 0
            let full = source.count - source.count % 3
            while i < full {
                let value = UInt32(src[i]) << 16 | UInt32(src[i + 1]) << 8 | UInt32(src[i + 2])
                dst[o] = table[Int(value >> 18 & 0x3F)]
                dst[o + 1] = table[Int(value >> 12 & 0x3F)]
                dst[o + 2] = table[Int(value >> 6 & 0x3F)]
                dst[o + 3] = table[Int(value & 0x3F)]
                i += 3
                o += 4
            }
            let rest = source.count - full
            if rest > 0 {
                let b0 = UInt32(src[i])
                let b1 = rest == 2 ? UInt32(src[i + 1]) : 0
                let value = b0 << 16 | b1 << 8
                dst[o] = table[Int(value >> 18 & 0x3F)]
                dst[o + 1] = table[Int(value >> 12 & 0x3F)]
                dst[o + 2] = rest == 2 ? table[Int(value >> 6 & 0x3F)] : UInt8(ascii: "=")
                dst[o + 3] = UInt8(ascii: "=")
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

    /// Decodes `source` into `destination` (at least `maxDecodedLength(source.count)` bytes).
    /// Returns the number of bytes written, or nil when `source` is not valid padded base64.
    public static func decode(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int?
    {
        guard source.count % 4 == 0 else { return nil }
        guard source.count > 0 else { return 0 }
        precondition(destination.count >= maxDecodedLength(source.count))
        return decodeTable.withUnsafeBufferPointer { table -> Int? in
            let src = source.bindMemory(to: UInt8.self)
            let dst = destination.bindMemory(to: UInt8.self)
            var i = 0
            var o = 0
            let lastQuad = source.count - 4
            while i < lastQuad {
                let a = table[Int(src[i])]
                let b = table[Int(src[i + 1])]
                let c = table[Int(src[i + 2])]
                let d = table[Int(src[i + 3])]
                if (a | b | c | d) & 0xC0 != 0 { return nil }
                let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                dst[o] = UInt8(truncatingIfNeeded: value >> 16)
                dst[o + 1] = UInt8(truncatingIfNeeded: value >> 8)
                dst[o + 2] = UInt8(truncatingIfNeeded: value)
                i += 4
                o += 3
            }
            let pad = (src[i + 3] == UInt8(ascii: "=") ? 1 : 0) + (src[i + 2] == UInt8(ascii: "=") ? 1 : 0)
            if pad == 2 && src[i + 3] != UInt8(ascii: "=") { return nil }
            let a = table[Int(src[i])]
            let b = table[Int(src[i + 1])]
            let c = pad >= 2 ? 0 : table[Int(src[i + 2])]
            let d = pad >= 1 ? 0 : table[Int(src[i + 3])]
            if (a | b | c | d) & 0xC0 != 0 { return nil }
            let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            dst[o] = UInt8(truncatingIfNeeded: value >> 16)
            o += 1
            if pad < 2 {
                dst[o] = UInt8(truncatingIfNeeded: value >> 8)
                o += 1
            }
            if pad < 1 {
                dst[o] = UInt8(truncatingIfNeeded: value)
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
