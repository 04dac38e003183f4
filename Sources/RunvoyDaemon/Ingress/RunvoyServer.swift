import Glibc
import Logging
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import ServiceLifecycle

/// Accepts connections on the daemon's Unix socket and serves each one, until graceful shutdown.
struct RunvoyServer: Service {
    let listening: ListeningSocket
    let context: ServerContext
    let group: any EventLoopGroup
    let notifier: SystemdNotifier
    let connections = Connections()
    /// Each user's unfinished large frames, across its connections.
    let pendingFrames = PendingFrames()

    /// Live connections, each user's share of them (for the connection limits) and how many times they changed
    /// (for `MemoryTrimmer`).
    final class Connections: Sendable {
        private let state = Mutex((shares: FairShares(), changes: 0))

        /// Counts a connection of `uid` in, or says why it may not be served (and counts nothing).
        func open(_ uid: uid_t, as holder: FairShares.Holder, within limits: FairShares.Limits) -> FairShares.Denial? {
            state.withLock {
                guard let denial = $0.shares.take(uid, as: holder, within: limits) else {
                    $0.changes += 1
                    return nil
                }
                return denial
            }
        }
        func closed(_ uid: uid_t) {
            state.withLock {
                $0.shares.give(uid)
                $0.changes += 1
            }
        }
        var current: Int { state.withLock { $0.shares.total } }
        var changes: Int { state.withLock { $0.changes } }
    }

    /// An accepted connection, set up on its event loop before any byte is read.
    struct Accepted: Sendable {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let caller: Caller
        let activity: ConnectionTimeoutHandler.Activity
    }

    /// What runs on each accepted channel before any byte is read: the caller from the kernel's peer credentials
    /// (`credentials` is `PeerCredentials.read` but in tests), then the pipeline. Fails closed: without
    /// credentials, or when the pipeline cannot be set up, the channel is closed unserved. (NIO's async server
    /// neither serves nor closes a channel whose initializer failed: it stayed open, its client waiting for ever
    /// and its descriptor lost; `ServerCredentialsTests.aConnectionWithoutCredentialsIsClosedUnserved`.)
    static func initializer(
        config: ConfigStore, pendingFrames: PendingFrames,
        credentials: @escaping @Sendable (any Channel) -> EventLoopFuture<Caller> = PeerCredentials.read(from:)
    ) -> @Sendable (any Channel) -> EventLoopFuture<Accepted> {
        { channel in
            let accepted = credentials(channel).flatMapThrowing { caller in
                let activity = ConnectionTimeoutHandler.Activity()
                let limits = config.current.limits
                let budget = FrameDecoder.Budget(
                    pending: pendingFrames, uid: FairShares.account(of: caller),
                    limit: max(limits.maxPendingBytesPerUser, limits.maxFrameBytes))
                let wrapped = try Self.wrap(channel, limits: limits, activity: activity, budget: budget)
                return Accepted(channel: wrapped, caller: caller, activity: activity)
            }
            accepted.whenFailure { _ in channel.close(promise: nil) }
            return accepted
        }
    }

    func run() async throws {
        let logger = context.logger
        let config = context.config
        let initializer = Self.initializer(config: config, pendingFrames: pendingFrames)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 512 * 1024, high: 2048 * 1024))
            // A large send buffer lets output stream with few wake-ups; the kernel caps it at wmem_max.
            .childChannelOption(.socketOption(.so_sndbuf), value: 4 << 20)
        let server: NIOAsyncChannel<Accepted, Never>
        switch listening {
        case .inherited(let fd):
            server = try await bootstrap.bind(fd, childChannelInitializer: initializer)
            logger.info("serving on the socket passed by systemd")
        case .path(let path):
            let fd = try ListeningSocket.bind(path: path, settings: config.current.socket, backlog: 1024)
            server = try await bootstrap.bind(fd, childChannelInitializer: initializer)
            // (NIO listens again with its default backlog on a socket it is given: the daemon's is 1024.)
            listen(fd, 1024)
            logger.info("serving", metadata: ["socket": "\(path)"])
        }
        notifier.ready(status: statusLine())

        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { tasks in
                do {
                    try await server.executeThenClose { inbound in
                        for try await accepted in inbound {
                            tasks.addTask { await serve(accepted) }
                        }
                    }
                } catch {
                    logger.debug("accept loop ended", metadata: ["error": "\(error)"])
                }
                notifier.stopping(status: "stopping: \(context.executions.runningCount) executions running")
                let current = config.current
                await context.executions.shutdown(grace: current.shutdownGrace, killGrace: current.killGrace)
                tasks.cancelAll()
            }
        } onGracefulShutdown: {
            logger.notice("shutting down: no longer accepting connections")
            server.channel.close(promise: nil)
        }
        if case .path(let path) = listening { unlink(path) }
    }

    /// Sets up an accepted connection's pipeline (frames, idle timeout) on its event loop, and wraps it for
    /// `Connection`.
    static func wrap(
        _ channel: any Channel, limits: Limits, activity: ConnectionTimeoutHandler.Activity,
        budget: FrameDecoder.Budget? = nil
    ) throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let timeout = TimeAmount.nanoseconds(
            limits.idleTimeout.components.seconds * 1_000_000_000 + limits.idleTimeout.components.attoseconds
                / 1_000_000_000)
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(FrameDecoder(maxFrameBytes: limits.maxFrameBytes, budget: budget)))
        try channel.pipeline.syncOperations.addHandler(ConnectionTimeoutHandler(timeout: timeout, activity: activity))
        // Requests are handled one after another; those sent behind one in progress (an `exec` waiting in the
        // queue) wait here. Two at most, then the socket is no longer read: sixteen let one user's connections
        // hold 16 MiB each (QueueTests.requestsSentBehindAWaitingExecAreBoundedInMemory).
        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
            wrappingChannelSynchronously: channel,
            configuration: .init(backPressureStrategy: .init(lowWatermark: 1, highWatermark: 2)))
    }

    private func serve(_ accepted: Accepted) async {
        let config = context.config.current
        let uid = FairShares.account(of: accepted.caller)
        let holder = FairShares.Holder(roles: Authorizer.roles(accepted.caller, config))
        if let denial = connections.open(uid, as: holder, within: .connections(config.limits)) {
            DaemonMetrics.shared.refused(.busy)
            let error = Self.busy(denial, holder: holder)
            context.refusals.recordCoalesced(
                Self.refusedRecord(accepted.caller, error, denial: denial, holder: holder), caller: accepted.caller,
                audit: context.auditor(config.audit))
            await refuse(accepted, error)
            return
        }
        defer {
            connections.closed(uid)
            notifier.status(statusLine())
        }
        await Connection(
            channel: accepted.channel, caller: accepted.caller, activity: accepted.activity, context: context
        )
        .run()
    }

    /// Sends the one error frame a connection that is not served gets, and closes it.
    private func refuse(_ accepted: Accepted, _ error: RunvoyError) async {
        try? await accepted.channel.executeThenClose { _, outbound in
            var buffer = accepted.channel.channel.allocator.buffer(capacity: 256)
            buffer.writeBytes(try Frame.encode(Reply<NoParams>(id: nil, error: error)))
            try await outbound.write(buffer)
        }
    }

    /// The `connection_refused` record of a connection refused by the connection limits.
    static func refusedRecord(
        _ caller: Caller, _ error: RunvoyError, denial: FairShares.Denial, holder: FairShares.Holder
    ) -> AuditEvent {
        let limit: String
        switch denial {
        case .full: limit = "max_connections"
        case .reserved: limit = "reserved_admin_connections"
        case .userShare: limit = holder == .noRole ? "max_connections_without_role" : "max_connections_per_user"
        }
        return AuditEvent(
            .connectionRefused, priority: 4,
            message: "refused a connection of \(caller.displayName) (uid \(caller.uid)): \(error.message)",
            fields: [
                ("CALLER_UID", String(caller.uid)), ("CALLER_USER", caller.displayName),
                ("CALLER_PID", String(caller.pid)), ("LIMIT", "limits.\(limit)"), ("REASON", error.description),
            ])
    }

    /// What a connection refused by the connection limits is told.
    static func busy(_ denial: FairShares.Denial, holder: FairShares.Holder) -> RunvoyError {
        switch denial {
        case .full(let limit):
            return RunvoyError(.busy, "runvoyd is at its limit of \(limit) connections; try again later")
        case .reserved(let limit, let reserved):
            return RunvoyError(
                .busy,
                "runvoyd is at its limit of \(limit) connections (the last \(reserved) are kept for administrators); try again later"
            )
        case .userShare(let limit):
            let key = holder == .noRole ? "max_connections_without_role" : "max_connections_per_user"
            return RunvoyError(
                .busy,
                "you hold \(limit) connections to runvoyd, the most one user may (limits.\(key)); close one and try again"
            )
        }
    }

    func statusLine() -> String {
        Self.auditStatus(Journal.shared.health)
            + "serving; \(context.executions.runningCount) executions running, \(context.executions.startedCount) started, \(connections.current) connections"
    }

    /// What `STATUS=` says first while the audit path is stalled; empty while it is not.
    static func auditStatus(_ health: Journal.Health) -> String {
        guard case .stalled(let since) = health else { return "" }
        let seconds = (ContinuousClock.now - since).components.seconds
        return "AUDIT PATH STALLED for \(seconds) s: the journal is not taking records, so executions are refused "
            + "(audit_unavailable); "
    }
}
