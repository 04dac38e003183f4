/// Constants of the runvoy wire protocol.
///
/// A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON holding one object.
public enum RunvoyProtocol {
    /// The protocol version this build speaks by default.
    public static let currentVersion = 1
    /// Every protocol version this build can speak.
    public static let supportedVersions = [1]
    /// The default largest frame payload either side accepts.
    public static let defaultMaxFrameBytes = 1 << 20
    /// Size of the frame length header.
    public static let headerSize = 4
    /// The version of runvoy itself.
    public static let softwareVersion = "0.1.0"
    /// Where the daemon listens unless configured otherwise.
    public static let defaultSocketPath = "/run/runvoy/runvoyd.sock"
}
