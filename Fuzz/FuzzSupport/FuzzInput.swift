/// Splits one fuzzer input into the values a target needs, like LLVM's `FuzzedDataProvider`: numbers (choices,
/// lengths, chunk sizes) are taken from the end, content from the front, so that mutating one kind of value
/// leaves the other in place. Taking more than there is yields zeros and empty arrays, never a failure.
public struct FuzzInput {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var front = 0
    private var back: Int

    public init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        self.bytes = UnsafeBufferPointer(start: data, count: size)
        self.back = size
    }

    /// Bytes not taken yet.
    public var remaining: Int { back - front }

    /// One byte from the end (0 when none is left).
    public mutating func byte() -> UInt8 {
        guard back > front else { return 0 }
        back -= 1
        return bytes[back]
    }

    /// A number in `range`, from as many bytes at the end as the range needs.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound)
        var value: UInt64 = 0
        var bits: UInt64 = 0
        while bits < 64 && span >> bits != 0 {
            value = value << 8 | UInt64(byte())
            bits += 8
        }
        return range.lowerBound + Int(span == UInt64.max ? value : value % (span + 1))
    }

    /// Any 64-bit value, from 8 bytes at the end (the first taken the most significant).
    public mutating func uint64() -> UInt64 {
        (0..<8).reduce(UInt64(0)) { value, _ in value << 8 | UInt64(byte()) }
    }

    /// Whether the next byte from the end is odd.
    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// Up to `count` bytes from the front.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let taken = min(max(0, count), remaining)
        defer { front += taken }
        return Array(bytes[front..<front + taken])
    }

    /// Everything not taken yet.
    public mutating func rest() -> [UInt8] { bytes(remaining) }
}

/// Builds an input that `FuzzInput` takes apart into the given values, for seed corpora: each call records what
/// the matching `FuzzInput` call, made in the same order, is to return.
public struct FuzzInputBuilder {
    private var front: [UInt8] = []
    /// Bytes for the end, in the order `FuzzInput` takes them (the last byte first).
    private var taken: [UInt8] = []

    public init() {}

    public mutating func byte(_ value: UInt8) { taken.append(value) }

    public mutating func int(_ value: Int, in range: ClosedRange<Int>) {
        precondition(range.contains(value), "\(value) is not in \(range)")
        let span = UInt64(range.upperBound - range.lowerBound)
        var offset = UInt64(value - range.lowerBound)
        var bytes: [UInt8] = []
        var bits: UInt64 = 0
        while bits < 64 && span >> bits != 0 {
            bytes.append(UInt8(truncatingIfNeeded: offset))
            offset >>= 8
            bits += 8
        }
        // `FuzzInput.int` reads the first byte it takes as the most significant.
        taken += bytes.reversed()
    }

    public mutating func uint64(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { byte(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    public mutating func bool(_ value: Bool) { byte(value ? 1 : 0) }

    public mutating func bytes(_ value: [UInt8]) { front += value }

    /// The input: the content, then the numbers from the last taken to the first.
    public var input: [UInt8] { front + taken.reversed() }
}
