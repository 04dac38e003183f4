/// The few parts of the POSIX ustar format a backup archive uses: regular files only, names under 100 bytes.
///
/// A member is a 512-byte header, the file's bytes, and zeros up to the next multiple of 512; the archive ends
/// with two zero blocks and is padded to a 10 KiB record, as tar(1) writes it. Sizes of 8 GiB and more use the
/// GNU base-256 size field, which GNU tar and bsdtar read.
public enum TarFormat {
    public static let blockSize = 512
    public static let recordSize = 10240
    static let maximumNameLength = 100
    static let largestOctalSize: Int64 = 0o77777777777

    /// A member as the reader found it.
    public struct Member: Equatable, Sendable {
        public var name: String
        public var size: Int64
    }

    /// Why a header cannot be read.
    public enum HeaderError: Error, Equatable {
        case badChecksum
        case notAFile(typeflag: UInt8)
        case badField(String)

        /// What is wrong with the header, to end a sentence that names it.
        public var explanation: String {
            switch self {
            case .badChecksum: "fails its checksum"
            case .notAFile(let typeflag):
                "is not a plain file (tar type "
                    + ((0x21...0x7e).contains(typeflag)
                        ? "'\(Character(Unicode.Scalar(typeflag)))'" : "0x" + Hex.string([typeflag])) + ")"
            case .badField(let field): "has an unreadable \(field) field"
            }
        }
    }

    /// The header block of a regular file `name` (mode 0600, owner 0) of `size` bytes, modified at `mtime`.
    public static func header(name: String, size: Int64, mtime: Int64) -> [UInt8] {
        precondition(name.utf8.count < maximumNameLength, "tar member name too long: \(name)")
        var block = [UInt8](repeating: 0, count: blockSize)
        put(Array(name.utf8), at: 0, into: &block)
        put(octal(0o600, width: 8), at: 100, into: &block)
        put(octal(0, width: 8), at: 108, into: &block)
        put(octal(0, width: 8), at: 116, into: &block)
        if size <= largestOctalSize {
            put(octal(size, width: 12), at: 124, into: &block)
        } else {
            // GNU base-256: the top bit of the first byte set, the size big-endian in the rest.
            var field = [UInt8](repeating: 0, count: 12)
            var value = UInt64(size)
            for index in stride(from: 11, to: 0, by: -1) {
                field[index] = UInt8(truncatingIfNeeded: value)
                value >>= 8
            }
            field[0] = 0x80
            put(field, at: 124, into: &block)
        }
        put(octal(max(0, mtime), width: 12), at: 136, into: &block)
        block[156] = UInt8(ascii: "0")
        put(Array("ustar".utf8) + [0], at: 257, into: &block)
        put(Array("00".utf8), at: 263, into: &block)
        put(Array("root".utf8), at: 265, into: &block)
        put(Array("root".utf8), at: 297, into: &block)
        put(octal(Int64(checksum(block)), width: 7) + [UInt8(ascii: " ")], at: 148, into: &block)
        return block
    }

    /// Zeros after `size` bytes of data, up to the next block.
    public static func padding(after size: Int64) -> Int {
        let remainder = Int(size % Int64(blockSize))
        return remainder == 0 ? 0 : blockSize - remainder
    }

    /// Whether `block` is all zeros (the end of the archive).
    public static func isZero(_ block: ArraySlice<UInt8>) -> Bool { block.allSatisfy { $0 == 0 } }

    /// Reads a header block.
    public static func parse(_ block: ArraySlice<UInt8>) throws(HeaderError) -> Member {
        let block = Array(block)
        precondition(block.count == blockSize)
        guard let stored = parseOctal(block[148..<156]), Int(stored) == checksum(block) else {
            throw .badChecksum
        }
        let typeflag = block[156]
        guard typeflag == UInt8(ascii: "0") || typeflag == 0 else { throw .notAFile(typeflag: typeflag) }
        let nameBytes = block[0..<100].prefix { $0 != 0 }
        let prefixBytes = block[345..<500].prefix { $0 != 0 }
        var name = String(decoding: nameBytes, as: UTF8.self)
        if !prefixBytes.isEmpty { name = String(decoding: prefixBytes, as: UTF8.self) + "/" + name }
        let size: Int64
        if block[124] & 0x80 != 0 {
            var value: Int64 = 0
            for byte in block[125..<136] {
                guard value < Int64.max >> 8 else { throw .badField("size") }
                value = value << 8 | Int64(byte)
            }
            size = value
        } else {
            guard let octal = parseOctal(block[124..<136]) else { throw .badField("size") }
            size = octal
        }
        return Member(name: name, size: size)
    }

    /// The header checksum: the sum of its bytes with the checksum field taken as spaces.
    static func checksum(_ block: [UInt8]) -> Int {
        var sum = 0
        for (index, byte) in block.enumerated() { sum += (148..<156).contains(index) ? 32 : Int(byte) }
        return sum
    }

    static func octal(_ value: Int64, width: Int) -> [UInt8] {
        let digits = Array(String(value, radix: 8).utf8)
        return [UInt8](repeating: UInt8(ascii: "0"), count: max(0, width - 1 - digits.count)) + digits + [0]
    }

    static func parseOctal(_ field: ArraySlice<UInt8>) -> Int64? {
        var value: Int64 = 0
        var seen = false
        for byte in field {
            if byte == 0 || byte == UInt8(ascii: " ") {
                if seen { break }
                continue
            }
            guard (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(byte), value < Int64.max >> 3 else { return nil }
            value = value << 3 | Int64(byte - UInt8(ascii: "0"))
            seen = true
        }
        return seen ? value : nil
    }

    private static func put(_ bytes: [UInt8], at offset: Int, into block: inout [UInt8]) {
        block.replaceSubrange(offset..<offset + bytes.count, with: bytes)
    }
}
