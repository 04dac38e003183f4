import CRunvoyPosix
import Crypto
import Glibc
import Logging
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import ServiceLifecycle

import struct Synchronization.Atomic

/// Builds the daemon's parts from a configuration and runs them until SIGTERM or SIGINT.
struct Daemon {
    let config: DaemonConfig
    /// The file to reload on SIGHUP; nil for the embedded development configuration.
    let configPath: String?

    func run() async throws {
        let logger = Logger(label: "runvoyd")
        let notifier = SystemdNotifier()
        Self.prepareProcess()
        warnAboutSetup(logger)
        for change in try Self.makeStateDirectory(config.stateDirectory) { logger.notice("\(change)") }
        // The daemon's own records (start, recovery, stop) are best-effort: nothing waits on them.
        let audit = AuditLog(config.audit, logger: logger)
        let (history, secrets) = try openStores(audit: audit, logger: logger)
        for warning in RunvoydCommand.missingSecrets(config) + RunvoydCommand.sharedRunAs(config)
            + RunvoydCommand.missingCapabilities() + RunvoydCommand.changeableWorkingDirectories(config)
        {
            logger.warning("\(warning)")
        }
        try prepareSecretsRuntimeDirectory(logger: logger)
        let containment = try selectContainment(audit: audit, logger: logger)
        let units = prepareUnits(audit: audit, logger: logger)
        let listening = try Self.listeningSocket(config.socket.path)
        if case .inherited(let fd) = listening,
            let warning = ListeningSocket.activationMismatch(fd, settings: config.socket)
        {
            logger.warning("\(warning)")
        }
        let services = makeServices(
            listening: listening, history: history, secrets: secrets, containment: containment, units: units,
            notifier: notifier, logger: logger)
        recordStart(audit, containment: containment)
        let serviceGroup = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await serviceGroup.run()
        audit.recordBestEffort(
            AuditEvent(.daemonStopping, priority: 6, message: "runvoyd stopped", fields: []))
        // What the journal has not taken yet gets a last chance; what is left then goes to stderr.
        Journal.shared.drain(timeout: config.audit.writeTimeout)
    }

    /// The daemon's services, in the order the service group starts them (and the reverse of the order it stops
    /// them in).
    private func makeServices(
        listening: ListeningSocket, history: ExecutionStore, secrets: SecretStore, containment: any Containment,
        units: UnitContainment, notifier: SystemdNotifier, logger: Logger
    ) -> [any Service] {
        let store = ConfigStore(config)
        let group = MultiThreadedEventLoopGroup.singleton
        let server = ServerHolder()
        let refusals = RefusalThrottle(logger: logger)
        let executionChanges = Atomic(0)
        let executions = ExecutionManager(
            group: group, logger: logger, store: history, secrets: secrets, refusals: refusals,
            containment: containment, units: units
        ) { _ in
            executionChanges.add(1, ordering: .relaxed)
            if let server = server.value { notifier.status(server.statusLine()) }
        }
        // What waits in the queue starts as soon as a reload makes room for it.
        store.observe { executions.limitsChanged($0) }
        // Temporary grants: those that expired while runvoyd was stopped end (with records), the rest are in force
        // before the first request is read or a request for approval recovered.
        let grants = Grants(store: history, config: store, logger: logger, journal: .shared, group: group)
        grants.watch(running: { executions.runningExecutions })
        grants.start()
        executions.approvals.setGrantLauncher(grants.launcher(executions.approvals))
        // Requests for approval the previous daemon left: expired, withdrawn, or waiting on (and started once
        // approved). Not awaited: starting one waits for the execution manager's group, which runs later.
        let recovering = store.current
        Task { await executions.approvals.recover(config: recovering) }
        let reloader = ConfigReloader(path: configPath, store: store, notifier: notifier, logger: logger)
        let schedules = ScheduleManager(store: store, units: units, logger: logger)
        let context = ServerContext(
            config: store, executions: executions, reloader: reloader, refusals: refusals, logger: logger,
            grants: grants, schedules: schedules)
        let runvoyServer = RunvoyServer(listening: listening, context: context, group: group, notifier: notifier)
        server.value = runvoyServer
        // STATUS= says when the audit path stalls and when it recovers. (Not stderr: under systemd that is a
        // journal stream too.)
        Journal.shared.observeHealth { _ in
            if let server = server.value { notifier.status(server.statusLine()) }
        }
        var services: [any Service] = []
        if let interval = notifier.watchdogInterval {
            services.append(
                WatchdogService(interval: interval, notifier: notifier) { server.value?.statusLine() ?? "" })
        }
        services.append(reloader)
        services.append(HistoryPruner(store: history, config: store, logger: logger))
        services.append(HistoryCheckpointer(store: history, logger: logger))
        services.append(refusals)
        services += metricsServices(store: store, executions: executions, server: runvoyServer, logger: logger)
        services.append(
            MemoryTrimmer(store: history) {
                executionChanges.load(ordering: .relaxed) &+ runvoyServer.connections.changes
            })
        // Before the server, so it is shut down after it: the server stops accepting, then `shutdown` lets the
        // executions end and this service's group empties.
        services.append(executions)
        services += [runvoyServer, schedules] as [any Service]
        return services
    }

    /// Lets the execution manager reach the server's status line once both exist.
    final class ServerHolder: @unchecked Sendable {
        // Written once before any connection is accepted, read afterwards only: no concurrent mutation.
        var value: RunvoyServer?
    }

    /// Makes sure fds 0-2 are open (so pipes never land there), raises the descriptor limit for many
    /// connections, caps the C allocator's arenas, and sets the umask commands inherit.
    static func prepareProcess() {
        // glibc's default (8 arenas per core) leaves the freed memory of a burst of connections spread over many
        // arenas that `malloc_trim` cannot fully empty: 2.5-4 MB stayed after 1,000 hostile connections, 1.3 MB
        // with two arenas, at no measured cost in executions per second (docs/BENCHMARKS.md).
        _ = runvoy_limit_malloc_arenas(2)
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) < 0 {
            let null = open("/dev/null", O_RDWR)
            if null >= 0 && null != fd {
                dup2(null, fd)
                close(null)
            }
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        umask(0o022)
    }

    /// Creates the state directory (0700) when needed, refuses one that others could read or replace, and
    /// makes it 0700 and the history's files 0600 (see `PrivateDirectories`). Returns what it changed.
    static func makeStateDirectory(_ path: String) throws -> [String] {
        try checkPrivate(path, what: "the state directory")
        do throws(SystemError) {
            try FileSystem.makeDirectories(path, mode: 0o700)
        } catch {
            throw ListeningSocket.SetupError(description: "cannot create state directory: \(error)")
        }
        try checkPrivate(path, what: "the state directory")
        do throws(PrivateDirectories.Refusal) {
            return try PrivateDirectories.secureStateDirectory(path, fix: true)
        } catch {
            throw ListeningSocket.SetupError(description: error.description)
        }
    }

    static func checkPrivate(_ path: String, what: String) throws {
        do throws(PrivateDirectories.Refusal) {
            try PrivateDirectories.checkOwnedPath(path, what: what)
        } catch {
            throw ListeningSocket.SetupError(description: "not starting: \(error.description)")
        }
    }

    static func shout(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
