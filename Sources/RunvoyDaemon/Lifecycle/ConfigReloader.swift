import Logging
import RunvoyConfig
import RunvoyKit
import ServiceLifecycle
import UnixSignals

/// Reloads the configuration on SIGHUP (or a `reload` request) into a new snapshot. A configuration that does
/// not validate, or whose policy expectations (`expect:`) fail, is rejected: the reason goes to the journal and
/// the old one stays in force.
final class ConfigReloader: Service, Sendable {
    let path: String?
    let store: ConfigStore
    let notifier: SystemdNotifier
    let logger: Logger
    /// Reloads run one at a time, whether a signal or a request asked.
    private let serial = Mutex(())

    init(path: String?, store: ConfigStore, notifier: SystemdNotifier, logger: Logger) {
        self.path = path
        self.store = store
        self.notifier = notifier
        self.logger = logger
    }

    /// What a reload did.
    enum Outcome: Sendable {
        case reloaded(DaemonConfig)
        /// The file is invalid or its expectations fail; every problem, one per line.
        case rejected(String)
        /// Running on the embedded development configuration: there is no file.
        case noFile
    }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            reload()
        }
    }

    @discardableResult
    func reload() -> Outcome {
        serial.withLock { _ in reloadNow() }
    }

    private func reloadNow() -> Outcome {
        let old = store.current
        let audit = AuditLog(failClosed: false, logger: logger)
        guard let path else {
            logger.notice("reload: running on the embedded configuration; nothing to reload")
            return .noFile
        }
        notifier.reloading()
        defer { notifier.reloaded(status: "serving; configuration digest \(store.current.digest)") }
        let config: DaemonConfig
        do {
            config = try ConfigLoader.load(path: path)
        } catch {
            reject(error.description, old: old, path: path, audit: audit)
            return .rejected(error.description)
        }
        let failures = PolicyReport.failedExpectations(config)
        guard failures.isEmpty else {
            let text = failures.map(\.description).joined(separator: "\n")
            reject(text, old: old, path: path, audit: audit)
            return .rejected(text)
        }
        if config.socket != old.socket || config.metrics != old.metrics {
            logger.warning("socket or metrics settings changed; they take effect at the next restart")
        }
        store.replace(with: config)
        for warning in config.warnings { logger.warning("\(warning.description)") }
        for warning in RunvoydCommand.changeableWorkingDirectories(config) { logger.warning("\(warning)") }
        audit.recordBestEffort(
            AuditEvent(
                .configReloaded, message: "configuration reloaded from \(path) (digest \(config.digest))",
                fields: [
                    ("CONFIG_PATH", path), ("CONFIG_DIGEST", config.digest), ("PREVIOUS_DIGEST", old.digest),
                    ("EXECUTORS", config.executors.map(\.name).joined(separator: ",")),
                ]))
        // With the temporary grants in force on both sides: a reload gains or loses none of them.
        audit.recordBestEffort(Self.policyRecord(store.current, previous: old))
        logger.notice("configuration reloaded", metadata: ["digest": "\(config.digest)"])
        return .reloaded(config)
    }

    private func reject(_ reason: String, old: DaemonConfig, path: String, audit: AuditLog) {
        audit.recordBestEffort(
            AuditEvent(
                .configRejected, priority: 3,
                message: "configuration reload rejected; keeping digest \(old.digest): \(reason)",
                fields: [("CONFIG_PATH", path), ("CONFIG_DIGEST", old.digest), ("ERRORS", reason)]))
        logger.error("configuration reload rejected; the previous configuration stays in force: \(reason)")
    }

    /// The `policy_loaded` record: the policy digest and, after a reload, each user's grants gained and lost.
    static func policyRecord(_ config: DaemonConfig, previous: DaemonConfig?) -> AuditEvent {
        let digest = PolicyReport.digest(config)
        var fields: [(String, String)] = [
            ("POLICY_DIGEST", digest), ("CONFIG_DIGEST", config.digest),
            (
                "ROLE_BINDINGS",
                config.roles.map {
                    "\($0.role.rawValue): users=\($0.users.joined(separator: ",")) groups=\($0.groups.joined(separator: ","))"
                }.joined(separator: "; ")
            ),
        ]
        var message = "policy \(digest) in force"
        if let previous {
            let users = Array(Set(PolicyReport.knownUsers(previous) + PolicyReport.knownUsers(config)))
            let change = PolicyReport.diff(
                from: PolicyReport.grants(previous, users: users), to: PolicyReport.grants(config, users: users))
            fields.append(("PREVIOUS_POLICY_DIGEST", PolicyReport.digest(previous)))
            fields.append(("GRANTS_GAINED", PolicyReport.json(change.gained)))
            fields.append(("GRANTS_LOST", PolicyReport.json(change.lost)))
            let gained = change.gained.values.reduce(0) { $0 + $1.count }
            let lost = change.lost.values.reduce(0) { $0 + $1.count }
            message += " (was \(PolicyReport.digest(previous))): \(gained) grants gained, \(lost) lost"
        }
        return AuditEvent(.policyLoaded, message: message, fields: fields)
    }
}
