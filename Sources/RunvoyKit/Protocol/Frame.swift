#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Encoding of whole frames: a 4-byte big-endian payload length, then the JSON payload.
public enum Frame {
    /// The 4-byte header for a payload of `length` bytes.
    public static func header(length: Int) -> [UInt8] {
        let value = UInt32(length)
        return [
            UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
            UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value),
        ]
    }

    /// Reads a big-endian length from the first four bytes of `bytes`.
    public static func length(from bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])
    }

    /// The JSON payload of `value`, without a header. Members are sorted, so the same answer is the same bytes
    /// (callers compare refusals to tell nothing apart; see PROTOCOL.md "What a refusal does not tell").
    public static func payload<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    /// A whole frame (header and payload) for `value`.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let body = try payload(value)
        return header(length: body.count) + body
    }

    /// Decodes a JSON payload, reading it where it is (the decoded value holds no reference to it), so a large
    /// request is not copied once more on its way to the policy.
    public static func decode<T: Decodable>(_ type: T.Type, from payload: UnsafeRawBufferPointer) throws -> T {
        guard let base = payload.baseAddress, !payload.isEmpty else {
            return try JSONDecoder().decode(type, from: Data())
        }
        let view = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: payload.count, deallocator: .none)
        return try JSONDecoder().decode(type, from: view)
    }
}
