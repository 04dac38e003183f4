import Crypto
import Logging
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The steps of start-up that check and prepare what the daemon needs before its services run.
extension Daemon {
    /// Says loudly what makes this configuration unsafe or unusable: audit not fail-closed, no journal, no roles.
    func warnAboutSetup(_ logger: Logger) {
        if !config.audit.failClosed {
            logger.critical(
                "AUDIT IS NOT FAIL-CLOSED (audit.fail_closed: false): executions run even when the journal refuses their records. Development only."
            )
            Self.shout(
                "runvoyd: WARNING: audit is not fail-closed; executions run even when the audit record cannot be written. Development only."
            )
        }
        if !Journal.isAvailable {
            logger.warning("no journal socket at \(Journal.socketPath): audit records cannot be written")
            if config.audit.failClosed {
                Self.shout(
                    "runvoyd: WARNING: no journal at \(Journal.socketPath); every execution will be refused with audit_unavailable"
                )
            }
        }
        for warning in config.warnings { logger.warning("\(warning.description)") }
        if config.roles.isEmpty {
            logger.warning("no roles are bound (`roles:`), so only root can use runvoyd")
        }
    }

    /// Opens the history (ending what a crash left running) and the secret store with the master key.
    func openStores(audit: AuditLog, logger: Logger) throws -> (ExecutionStore, SecretStore) {
        do throws(StoreError) {
            let history = try ExecutionStore(stateDirectory: config.stateDirectory)
            try HistoryRecovery.run(store: history, audit: audit, logger: logger)
            let key: SymmetricKey
            do throws(MasterKey.LoadError) {
                key = try MasterKey.load(config)
            } catch {
                throw StoreError(.database, error.description)
            }
            return (history, try SecretStore(store: history, key: key))
        } catch {
            throw ListeningSocket.SetupError(description: error.message)
        }
    }

    /// Creates the secrets runtime directory, checked before anything is created or removed there and again
    /// once it exists.
    func prepareSecretsRuntimeDirectory(logger: Logger) throws {
        let path = config.secrets.runtimeDirectory
        try Self.checkPrivate(path, what: "the secrets runtime directory")
        do throws(SystemError) {
            if let warning = try SecretInjection.prepareRuntimeDirectory(path) { logger.warning("\(warning)") }
        } catch {
            throw ListeningSocket.SetupError(
                description: "cannot prepare the secrets runtime directory \(path): \(error)")
        }
        try Self.checkPrivate(path, what: "the secrets runtime directory")
    }

    /// The socket systemd passed (socket activation), else one created at `path`.
    static func listeningSocket(_ path: String) throws -> ListeningSocket {
        if let fd = try ListeningSocket.fromSystemd() { return .inherited(fd) }
        try ListeningSocket.prepare(path: path)
        return .path(path)
    }

    /// Chooses the containment (`containment:`), says which at start-up, and in cgroup mode ends and removes
    /// what executions of a previous run left in their cgroups (audited, one record each).
    func selectContainment(audit: AuditLog, logger: Logger) throws -> any Containment {
        let containment: any Containment
        do throws(ContainmentSelection.Unavailable) {
            containment = try ContainmentSelection.select(config.containment)
        } catch {
            throw ListeningSocket.SetupError(description: "not starting: \(error.description)")
        }
        var location = ""
        if let cgroups = containment as? CgroupContainment { location = " in \(cgroups.root)" }
        logger.notice("containment: \(containment.mode.rawValue)\(location)")
        for note in containment.notes + ContainmentSelection.unenforced(config, mode: containment.mode) {
            logger.warning("containment: \(note)")
        }
        if let cgroups = containment as? CgroupContainment {
            for (id, count) in cgroups.recoverLost() {
                audit.recordBestEffort(
                    AuditEvent(
                        .executionProcessesEnded, priority: 4,
                        message: "execution \(id) left \(count) processes in its cgroup from a previous run; killed",
                        fields: [
                            ("EXECUTION_ID", id), ("PROCESSES", String(count)),
                            ("CGROUP", cgroups.executions + "/" + id),
                        ]))
            }
        }
        return containment
    }

    /// Transient units for sandboxed executors: where systemd runs the system, what units of executions a
    /// previous run left are killed (audited, one record each); with sandboxed executors configured, the bus is
    /// connected now and start-up says whether they can be honoured (if not, their executions are refused).
    func prepareUnits(audit: AuditLog, logger: Logger) -> UnitContainment {
        let units = UnitContainment()
        for (id, count) in units.recoverLost() {
            audit.recordBestEffort(
                AuditEvent(
                    .executionProcessesEnded, priority: 4,
                    message: "execution \(id) left \(count) processes in its unit from a previous run; killed",
                    fields: [
                        ("EXECUTION_ID", id), ("PROCESSES", String(count)), ("UNIT", UnitRecipe.unitName(id)),
                    ]))
        }
        let sandboxed = config.executors.filter { $0.sandbox != nil }.map(\.name)
        guard !sandboxed.isEmpty else { return units }
        if let reason = units.unavailableReason {
            logger.error(
                "sandboxed executors cannot be honoured, their executions are refused: \(reason)",
                metadata: ["executors": "\(sandboxed.joined(separator: ","))"])
        } else {
            logger.notice("containment: unit for sandboxed executors (\(sandboxed.joined(separator: ", ")))")
        }
        return units
    }

    /// The `daemon_started` record, and the policy record of the configuration it serves.
    func recordStart(_ audit: AuditLog, containment: any Containment) {
        audit.recordBestEffort(
            AuditEvent(
                .daemonStarted, priority: 6,
                message: "runvoyd \(RunvoyProtocol.softwareVersion) started (configuration digest \(config.digest))",
                fields: [
                    ("CONFIG_PATH", configPath ?? "(embedded)"), ("CONFIG_DIGEST", config.digest),
                    ("AUDIT_FAIL_CLOSED", config.audit.failClosed ? "1" : "0"),
                    ("EXECUTORS", config.executors.map(\.name).joined(separator: ",")),
                    ("CONTAINMENT", containment.mode.rawValue),
                ]
                    + (containment.notes + ContainmentSelection.unenforced(config, mode: containment.mode)).map {
                        ("CONTAINMENT_NOTE", $0)
                    }))
        audit.recordBestEffort(ConfigReloader.policyRecord(config, previous: nil))
    }
}
