import RunvoyKit
import Testing

/// The comparison `health` uses on the master key: equal only for the same bytes, whatever the position of a
/// difference; and the clearing of secret buffers.
@Suite struct ConstantTimeTests {
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { ConstantTime.equal(x, $0) } }
    }

    @Test func equalOnlyForTheSameBytes() {
        let key = (0..<32).map { UInt8($0 * 7 & 0xFF) }
        #expect(Self.equal(key, key))
        #expect(Self.equal([], []))
        for position in [0, 15, 31] {
            var other = key
            other[position] ^= 0x01
            #expect(!Self.equal(key, other), "a difference at byte \(position)")
            other[position] ^= 0x81
            #expect(!Self.equal(key, other), "a difference at byte \(position)")
        }
        #expect(!Self.equal(key, Array(key.prefix(31))))
        #expect(!Self.equal(key, key + [0]))
    }

    @Test func zeroClearsTheBuffer() {
        var bytes = [UInt8](repeating: 0xAB, count: 48)
        bytes.withUnsafeMutableBytes { ConstantTime.zero($0) }
        #expect(bytes.allSatisfy { $0 == 0 })
        ConstantTime.zero(UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }
}
