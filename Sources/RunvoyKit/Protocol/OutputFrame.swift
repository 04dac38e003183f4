/// Builds and parses `output` event payloads directly, without Codable, because they carry the bulk of all bytes.
///
/// The daemon always lays an output event out as
/// `{"event":"output","stream":"stdout","id":ID,"data":"BASE64"}`; any other layout of the same JSON is
/// still valid and is parsed by the general decoder.
public enum OutputFrame {
    static let prefixOut = Array(#"{"event":"output","stream":"stdout","id":"#.utf8)
    static let prefixErr = Array(#"{"event":"output","stream":"stderr","id":"#.utf8)
    static let dataKey = Array(#","data":""#.utf8)
    static let suffix = Array(#""}"#.utf8)

    /// The payload size (without the frame header) of an output event carrying `count` bytes.
    public static func payloadLength(idLiteral: [UInt8], count: Int) -> Int {
        prefixOut.count + idLiteral.count + dataKey.count + Base64.encodedLength(count) + suffix.count
    }

    /// Writes a complete frame (header and payload) into `destination`, which must hold
    /// `4 + payloadLength(...)` bytes. Returns the bytes written.
    public static func writeFrame(
        stream: OutputStreamKind, idLiteral: [UInt8], data: UnsafeRawBufferPointer,
        into destination: UnsafeMutableRawBufferPointer
    ) -> Int {
        let payload = payloadLength(idLiteral: idLiteral, count: data.count)
        let length = UInt32(payload)
        destination[0] = UInt8(truncatingIfNeeded: length >> 24)
        destination[1] = UInt8(truncatingIfNeeded: length >> 16)
        destination[2] = UInt8(truncatingIfNeeded: length >> 8)
        destination[3] = UInt8(truncatingIfNeeded: length)
        var offset = 4
        func put(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes {
                destination.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
            }
            offset += bytes.count
        }
        put(stream == .stdout ? prefixOut : prefixErr)
        put(idLiteral)
        put(dataKey)
        offset += Base64.encode(data, into: UnsafeMutableRawBufferPointer(rebasing: destination[offset...]))
        put(suffix)
        return offset
    }

    /// A parsed output event: the stream and the range of the base64 text inside the payload.
    public struct Parsed: Sendable, Equatable {
        public var stream: OutputStreamKind
        public var base64: Range<Int>
    }

    /// Recognises the daemon's own layout of an output event. Returns nil for anything else, which
    /// the caller then hands to the general JSON decoder.
    public static func parseFast(_ payload: UnsafeRawBufferPointer) -> Parsed? {
        let bytes = payload.bindMemory(to: UInt8.self)
        guard bytes.count > prefixOut.count + dataKey.count + suffix.count else { return nil }
        let stream: OutputStreamKind
        if bytes.starts(with: prefixOut) {
            stream = .stdout
        } else if bytes.starts(with: prefixErr) {
            stream = .stderr
        } else {
            return nil
        }
        // Skip the id literal: a number, or a string without escapes (anything else goes the slow way).
        var index = prefixOut.count
        if bytes[index] == UInt8(ascii: "\"") {
            index += 1
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                if bytes[index] == UInt8(ascii: "\\") { return nil }
                index += 1
            }
            index += 1
        } else {
            while index < bytes.count,
                bytes[index] == UInt8(ascii: "-") || (bytes[index] >= 0x30 && bytes[index] <= 0x39)
            {
                index += 1
            }
        }
        guard index + dataKey.count <= bytes.count,
            UnsafeBufferPointer(rebasing: bytes[index..<index + dataKey.count]).elementsEqual(dataKey)
        else { return nil }
        let start = index + dataKey.count
        let end = bytes.count - suffix.count
        guard end >= start, UnsafeBufferPointer(rebasing: bytes[end...]).elementsEqual(suffix) else { return nil }
        return Parsed(stream: stream, base64: start..<end)
    }
}
