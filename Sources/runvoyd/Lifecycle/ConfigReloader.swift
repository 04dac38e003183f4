import Logging
import RunvoyConfig
import ServiceLifecycle
import UnixSignals

/// Reloads the configuration on SIGHUP into a new snapshot. A configuration that does not validate is
/// rejected, the reason goes to the journal, and the old one stays in force.
struct ConfigReloader: Service {
    let path: String?
    let store: ConfigStore
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            reload()
        }
    }

    func reload() {
        let old = store.current
        let audit = AuditLog(failClosed: false, logger: logger)
        guard let path else {
            logger.notice("SIGHUP: running on the embedded configuration; nothing to reload")
            return
        }
        notifier.reloading()
        do {
            let config = try ConfigLoader.load(path: path)
            if config.socket != old.socket {
                logger.warning("socket settings changed; they take effect at the next restart")
            }
            store.replace(with: config)
            for warning in config.warnings { logger.warning("\(warning.description)") }
            audit.recordBestEffort(
                AuditEvent(
                    .configReloaded, message: "configuration reloaded from \(path) (digest \(config.digest))",
                    fields: [
                        ("CONFIG_PATH", path), ("CONFIG_DIGEST", config.digest), ("PREVIOUS_DIGEST", old.digest),
                        ("EXECUTORS", config.executors.map(\.name).joined(separator: ",")),
                    ]))
            logger.notice("configuration reloaded", metadata: ["digest": "\(config.digest)"])
        } catch {
            audit.recordBestEffort(
                AuditEvent(
                    .configRejected, priority: 3,
                    message: "configuration reload rejected; keeping digest \(old.digest): \(error.description)",
                    fields: [("CONFIG_PATH", path), ("CONFIG_DIGEST", old.digest), ("ERRORS", error.description)]))
            logger.error(
                "configuration reload rejected; the previous configuration stays in force: \(error.description)")
        }
        notifier.reloaded(status: "serving; configuration digest \(store.current.digest)")
    }
}
