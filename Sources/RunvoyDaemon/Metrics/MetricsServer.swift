import Glibc
import Logging
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import ServiceLifecycle

/// Serves the metrics exposition over plain HTTP (`GET /metrics`) on a Unix socket of its own, with its own mode
/// and group, or on a TCP port when one is configured (`metrics.listen`). Each connection gets one answer and is
/// closed (see `MetricsRequestHandler` for the bounds); beyond `maxConnections` at once, new ones are closed at
/// once, so scrapers cannot hold the daemon's descriptors.
struct MetricsServer: Service {
    enum Endpoint: Sendable, CustomStringConvertible {
        case unix(path: String, mode: UInt32, group: String?)
        case tcp(host: String, port: Int)

        var description: String {
            switch self {
            case .unix(let path, _, _): path
            case .tcp(let host, let port): "tcp \(host):\(port)"
            }
        }
    }

    static let maxConnections = 64

    let endpoint: Endpoint
    let group: any EventLoopGroup
    let logger: Logger
    var timeout: TimeAmount = .seconds(2)
    var exposition: @Sendable () -> [UInt8] = Recent(maxAge: .milliseconds(100)).exposition

    /// The servers the settings ask for: none by default.
    static func configured(_ settings: MetricsSettings, group: any EventLoopGroup, logger: Logger) -> [MetricsServer] {
        var servers: [MetricsServer] = []
        if let path = settings.socket {
            servers.append(
                MetricsServer(
                    endpoint: .unix(path: path, mode: settings.socketMode, group: settings.socketGroup), group: group,
                    logger: logger))
        }
        if let listen = settings.listen, let address = MetricsSettings.hostAndPort(listen) {
            servers.append(
                MetricsServer(endpoint: .tcp(host: address.host, port: address.port), group: group, logger: logger))
        }
        return servers
    }

    func run() async throws {
        let channel = try await bind()
        logger.info("serving metrics", metadata: ["endpoint": "\(endpoint)"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        if case .unix(let path, _, _) = endpoint { unlink(path) }
    }

    /// Binds the endpoint (a stale socket file is replaced; a live one is not) and applies its permissions.
    func bind() async throws -> any Channel {
        let open = OpenConnections()
        let timeout = timeout
        let exposition = exposition
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                guard open.take(limit: Self.maxConnections) else { return channel.close() }
                channel.closeFuture.whenComplete { _ in open.give() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        MetricsRequestHandler(timeout: timeout, exposition: exposition))
                }
            }
        switch endpoint {
        case .unix(let path, let mode, let group):
            try ListeningSocket.prepare(path: path)
            let channel = try await bootstrap.bind(unixDomainSocketPath: path).get()
            var settings = SocketSettings()
            settings.mode = mode
            settings.group = group
            try ListeningSocket.applyPermissions(path: path, settings: settings)
            return channel
        case .tcp(let host, let port):
            logger.warning(
                "METRICS ARE SERVED ON TCP \(host):\(port) (metrics.listen): anyone who can reach that port can read them; prefer metrics.socket"
            )
            Daemon.shout("runvoyd: WARNING: metrics are served on TCP \(host):\(port) (metrics.listen)")
            return try await bootstrap.bind(host: host, port: port).get()
        }
    }

    /// The exposition rendered at most once per `maxAge`: a client scraping in a loop costs the daemon a copy of
    /// bytes per request, not a rendering (about 45 µs), and figures at most `maxAge` old are as good to a scraper.
    final class Recent: Sendable {
        let maxAge: Duration
        private let rendered = Mutex<(at: ContinuousClock.Instant, bytes: [UInt8])?>(nil)

        init(maxAge: Duration) { self.maxAge = maxAge }

        func exposition() -> [UInt8] {
            let now = ContinuousClock.now
            if let recent = rendered.withLock({ $0 }), now - recent.at < maxAge { return recent.bytes }
            let bytes = DaemonMetrics.shared.exposition()
            rendered.withLock { $0 = (now, bytes) }
            return bytes
        }
    }

    /// How many metrics connections are open, bounded.
    final class OpenConnections: Sendable {
        private let count = Mutex(0)

        func take(limit: Int) -> Bool {
            count.withLock {
                guard $0 < limit else { return false }
                $0 += 1
                return true
            }
        }

        func give() { count.withLock { $0 -= 1 } }
    }
}
