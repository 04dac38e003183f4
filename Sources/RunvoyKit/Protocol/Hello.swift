/// Parameters of `hello`.
public struct HelloParams: Codable, Sendable, Equatable {
    /// Free-form client name and version, for the daemon's logs.
    public var client: String?
    /// Protocol versions the client speaks.
    public var versions: [Int]?

    public init(client: String?, versions: [Int]?) {
        self.client = client
        self.versions = versions
    }
}

/// Result of `hello`.
public struct HelloResult: Codable, Sendable, Equatable {
    /// Always `runvoyd`.
    public var daemon: String
    /// The daemon's software version.
    public var version: String
    /// Every protocol version the daemon speaks.
    public var protocols: [Int]
    /// The version chosen for this connection: the highest the client listed in `versions` that the daemon
    /// speaks (the daemon's newest when the client listed none).
    public var `protocol`: Int?
    /// The largest frame payload the daemon accepts.
    public var maxFrameBytes: Int

    public init(daemon: String, version: String, protocols: [Int], maxFrameBytes: Int) {
        self.daemon = daemon
        self.version = version
        self.protocols = protocols
        self.maxFrameBytes = maxFrameBytes
    }

    enum CodingKeys: String, CodingKey {
        case daemon, version, protocols, `protocol`
        case maxFrameBytes = "max_frame_bytes"
    }
}
