import ArgumentParser
import CRunvoyPosix
import Glibc
import Logging
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The runvoyd daemon's command line.
public struct RunvoydCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "runvoyd",
        abstract: "Run infrastructure commands for the people on this host without sharing credentials.",
        discussion: """
            runvoyd listens on a Unix socket (or the socket systemd passes), identifies each caller from the \
            kernel (SO_PEERCRED), checks the executor's rules, writes an audit record to the journal, and runs \
            the command as the executor's user, streaming its output back to runvoyctl.

            SIGTERM or SIGINT: stop accepting, let executions finish within shutdown_grace, then end them.
            SIGHUP: reload the configuration; an invalid one is rejected and the old one stays.

            --restore FILE --state-directory DIR restores a backup made with `runvoyctl backup` into a new, empty \
            directory, offline: every checksum, the format and schema versions and (when a master key is at hand) \
            the secrets are checked first, and nothing is left behind when any check fails.
            """,
        version: RunvoyProtocol.softwareVersion
    )

    @Option(name: .long, help: ArgumentHelp("Configuration file.", valueName: "path"))
    var config: String?

    @Flag(name: .long, help: "Validate the configuration, print every problem with file, line and key, and exit.")
    var checkConfig = false

    @Flag(
        name: .long,
        help: "Development mode: use the embedded default configuration (socket and state under --state-root).")
    var dev = false

    @Option(name: .long, help: ArgumentHelp("State root for --dev.", valueName: "dir"))
    var stateRoot: String = ".runvoy"

    @Option(
        name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "info"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Restore a backup archive (from `runvoyctl backup`) into --state-directory, offline, and exit.",
            valueName: "file"))
    var restore: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --restore: the state directory to create; it must not exist or be empty.", valueName: "dir"))
    var stateDirectory: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --restore: the master key to check the secrets with when the archive holds none (else the configured one, if any).",
            valueName: "path"))
    var keyFile: String?

    static let defaultConfigPath = "/etc/runvoy/runvoyd.yaml"

    public init() {}

    public func validate() throws {
        if dev && config != nil {
            throw ValidationError("--dev uses the embedded configuration; do not combine it with --config")
        }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("unknown log level '\(logLevel)'") }
        if restore != nil {
            if stateDirectory == nil { throw ValidationError("--restore needs --state-directory DIR") }
            if dev || checkConfig { throw ValidationError("--restore cannot be combined with --dev or --check-config") }
        } else if stateDirectory != nil || keyFile != nil {
            throw ValidationError("--state-directory and --key-file go with --restore")
        }
    }

    public func run() async throws {
        // First, before any configuration, key or secret is read: no core dump of this process, and no ptrace,
        // /proc/PID/mem or /proc/PID/environ for other processes of its uid (see docs/SECURITY.md).
        guard runvoy_set_nondumpable() == 0 else {
            Daemon.shout("runvoyd: cannot make the process non-dumpable: \(SystemError.text())")
            throw ExitCode(1)
        }
        if let restore, let stateDirectory {
            try Restore.run(archive: restore, stateDirectory: stateDirectory, keyFile: keyFile, configPath: config)
            return
        }
        Self.bootstrapLogging(level: Logger.Level(rawValue: logLevel) ?? .info)
        let (loaded, path) = try loadConfiguration()
        if checkConfig { return try Self.check(loaded, source: path ?? "embedded configuration") }
        let failures = PolicyReport.failedExpectations(loaded)
        if !failures.isEmpty {
            for failure in failures { Daemon.shout(failure.description) }
            Daemon.shout("runvoyd: \(failures.count) policy expectation(s) failed; not starting")
            throw ExitCode(78)
        }
        if dev {
            Daemon.shout("runvoyd: development mode; socket \(loaded.socket.path)")
            Daemon.shout("runvoyd: try: RUNVOY_SOCKET=\(loaded.socket.path) runvoyctl exec -- id")
        }
        do {
            try await Daemon(config: loaded, configPath: path).run()
        } catch let error as ListeningSocket.SetupError {
            Daemon.shout("runvoyd: \(error.description)")
            throw ExitCode(1)
        }
    }

    /// Log lines go to the journal when there is one (and `RUNVOYD_LOG_STDERR` is not set), else to stderr.
    private static func bootstrapLogging(level: Logger.Level) {
        let useJournal = Journal.isAvailable && getenv("RUNVOYD_LOG_STDERR") == nil
        LoggingSystem.bootstrap { label in
            if useJournal {
                var handler = JournalLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// The configuration to serve, and the file it came from (nil for the embedded development one). A file that
    /// cannot be loaded ends runvoyd with EX_CONFIG (1 with --check-config), after saying why.
    private func loadConfiguration() throws -> (DaemonConfig, String?) {
        if dev {
            let root = Self.absolute(stateRoot)
            let userName: String
            let groupName: String
            if geteuid() == 0 {
                userName = "nobody"
                groupName = UserDatabase.groupName(gid: UserDatabase.user(named: "nobody")?.gid ?? 65534) ?? "nogroup"
            } else {
                userName = UserDatabase.user(uid: geteuid())?.name ?? String(geteuid())
                groupName = UserDatabase.groupName(gid: getegid()) ?? String(getegid())
            }
            return (ConfigLoader.embeddedDefault(stateRoot: root, runAsUser: userName, runAsGroup: groupName), nil)
        }
        let file = config ?? Self.defaultConfigPath
        do {
            return (try ConfigLoader.load(path: file), file)
        } catch {
            Daemon.shout(error.description)
            if checkConfig { throw ExitCode(1) }
            if config == nil && access(file, F_OK) != 0 {
                Daemon.shout(
                    "runvoyd: no configuration at \(file); pass --config PATH, or --dev for the embedded development configuration"
                )
            }
            throw ExitCode(78)  // EX_CONFIG
        }
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        return String(cString: buffer) + "/" + path
    }
}
