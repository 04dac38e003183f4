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
/// once, so scrapers cannot hold the daemon's descriptors. One peer (`MetricsPeer`: an account, all uids with no
/// passwd entry together, or on TCP a remote address) holds at most `maxConnectionsPerPeer` of them, and the last
/// `keptForRoot` are root's: a member of the socket's group, or a local account on the TCP port, that connects in
/// a loop cannot keep the others' scraper, or root, out.
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
    static let maxConnectionsPerPeer = 4
    static let keptForRoot = 8

    let endpoint: Endpoint
    let group: any EventLoopGroup
    let logger: Logger
    var timeout: TimeAmount = .seconds(2)
    var headTimeout: TimeAmount = .seconds(1)
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
        let (timeout, headTimeout) = (timeout, headTimeout)
        let exposition = exposition
        let tcp: Bool = if case .tcp = endpoint { true } else { false }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                Self.peer(of: channel, tcp: tcp).flatMap { peer in
                    guard open.take(peer, limit: Self.maxConnections) else { return channel.close() }
                    channel.closeFuture.whenComplete { _ in open.give(peer) }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            MetricsRequestHandler(timeout: timeout, headTimeout: headTimeout, exposition: exposition))
                    }
                }
            }
        switch endpoint {
        case .unix(let path, let mode, let group):
            try ListeningSocket.prepare(path: path)
            var settings = SocketSettings()
            settings.mode = mode
            settings.group = group
            let fd = try ListeningSocket.bind(path: path, settings: settings, backlog: 128)
            return try await bootstrap.withBoundSocket(fd).get()
        case .tcp(let host, let port):
            let warning =
                "METRICS ARE SERVED ON TCP \(host):\(port) (metrics.listen): every account on this machine, and anyone who can reach that port, can read them and hold connections (\(Self.maxConnectionsPerPeer) each, \(Self.maxConnections - Self.keptForRoot) in all); prefer metrics.socket, whose mode and group say who may scrape"
            logger.warning("\(warning)")
            Daemon.shout("runvoyd: WARNING: \(warning)")
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

    /// The peer of a connection: on a Unix socket its `SO_PEERCRED` uid's account (a connection without one is
    /// closed), on TCP the owner of the connecting socket or its address (`MetricsPeer`).
    static func peer(of channel: any Channel, tcp: Bool) -> EventLoopFuture<MetricsPeer> {
        if tcp {
            return channel.eventLoop.makeSucceededFuture(
                MetricsPeer.of(remote: channel.remoteAddress, local: channel.localAddress))
        }
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(PeerCredentials.PeerCredentialsError())
        }
        return provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: SO_PEERCRED)
        ).map { (credentials: PeerCredentials.UCred) in MetricsPeer.of(uid: credentials.uid) }
    }

    /// How many metrics connections are open, bounded in all and per peer.
    final class OpenConnections: Sendable {
        private let state = Mutex((total: 0, byPeer: [MetricsPeer: Int]()))

        /// Counts a connection of `peer` in, or says it may not be served: root's are bounded only by `limit`,
        /// any other peer's by `limit - keptForRoot` in all and `maxConnectionsPerPeer` each.
        func take(_ peer: MetricsPeer, limit: Int) -> Bool {
            state.withLock {
                guard $0.total < (peer == .root ? limit : limit - keptForRoot) else { return false }
                if peer != .root {
                    guard $0.byPeer[peer, default: 0] < maxConnectionsPerPeer else { return false }
                    $0.byPeer[peer, default: 0] += 1
                }
                $0.total += 1
                return true
            }
        }

        func give(_ peer: MetricsPeer) {
            state.withLock {
                $0.total -= 1
                if peer != .root {
                    let left = $0.byPeer[peer, default: 1] - 1
                    $0.byPeer[peer] = left > 0 ? left : nil
                }
            }
        }
    }
}
