/// Binary output frames, sent only to a client that asked for them with `exec`'s `binary_output`.
///
/// The header's top bit marks the frame as binary; the low 31 bits are the payload length. The payload is one
/// stream byte (1 = stdout, 2 = stderr) followed by the raw output bytes. No JSON frame can have the top bit set,
/// since no frame limit comes near 2 GiB.
public enum BinaryOutputFrame {
    public static let flag: UInt32 = 0x8000_0000
    public static let stdoutTag: UInt8 = 1
    public static let stderrTag: UInt8 = 2

    /// The 5 bytes before `count` bytes of output on `stream`.
    public static func header(stream: OutputStreamKind, count: Int) -> [UInt8] {
        let value = flag | UInt32(count + 1)
        return [
            UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
            UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value),
            stream == .stdout ? stdoutTag : stderrTag,
        ]
    }
}
