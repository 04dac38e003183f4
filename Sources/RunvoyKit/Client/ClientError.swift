/// A failure on the client side, or an error the daemon answered with.
public struct ClientError: Error, CustomStringConvertible, Sendable {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// Nothing listens at the socket path.
        public static let daemonNotRunning = Code(rawValue: "daemon_not_running")
        /// The socket exists but the caller may not connect to it.
        public static let socketPermission = Code(rawValue: "socket_permission")
        /// The connection closed before the exchange finished.
        public static let connectionLost = Code(rawValue: "connection_lost")
        /// The daemon sent something that does not follow the protocol.
        public static let protocolViolation = Code(rawValue: "protocol_violation")
        /// The daemon answered with an error; see `remote`.
        public static let remote = Code(rawValue: "remote")
        /// Any other local I/O failure.
        public static let io = Code(rawValue: "io")
    }

    public var code: Code
    public var message: String
    /// The daemon's error, when `code` is `.remote`.
    public var remote: RunvoyError?

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public init(remote: RunvoyError) {
        self.code = .remote
        self.message = remote.message
        self.remote = remote
    }

    public var description: String {
        if let remote, let wait = remote.data?.retryAfterMs {
            return "\(remote.message); try again in \(Self.seconds(wait)) [\(remote.code.rawValue)]"
        }
        if let remote { return "\(remote.message) [\(remote.code.rawValue)]" }
        return message
    }

    /// `0.3 s`, `12 s`, `3 min 20 s`: milliseconds rounded up to what a person waits for.
    public static func seconds(_ ms: Int64) -> String {
        if ms < 10_000 {
            let tenths = (max(ms, 1) + 99) / 100
            return "\(tenths / 10).\(tenths % 10) s"
        }
        // (A hostile or broken daemon may send anything: no overflow near Int64.max.)
        let seconds = ms / 1000 + (ms % 1000 == 0 ? 0 : 1)
        return seconds < 120 ? "\(seconds) s" : "\(seconds / 60) min \(seconds % 60) s"
    }
}
