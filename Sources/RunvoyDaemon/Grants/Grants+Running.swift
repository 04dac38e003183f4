import RunvoyConfig
import RunvoyKit

/// `grants.end_running`: when a grant ends (revoked or expired), the running executions of its user that the
/// configuration then in force no longer allows (their command decided again, with the grants left) are
/// terminated with the kill grace (`kill`, the default) and audited, or left running (`keep`). Whatever the
/// setting, they take no more input from the user (`RequestContext.requireUse`).
extension Grants {
    /// Ends what `ended` admitted among `running` under `config` (the configuration once they ended); returns the
    /// executions terminated.
    @discardableResult
    func endRunning(
        after ended: [TemporaryGrant], config: DaemonConfig, running: [Execution], change: String
    ) -> [Execution] {
        guard config.grantSettings.endRunning == .kill, !ended.isEmpty else { return [] }
        var terminated: [Execution] = []
        for live in running where !live.isFinished {
            guard let grant = ended.first(where: { $0.uid == live.caller.uid }),
                !Self.stillAllowed(live, config)
            else { continue }
            live.terminate()
            terminated.append(live)
            audit(config).recordBestEffort(Self.killed(live, grant, change: change))
            logger.notice(
                "terminated an execution its ended grant admitted",
                metadata: ["execution": "\(live.id)", "grant": "\(grant.id)"])
        }
        return terminated
    }

    /// Whether `config` still lets the user who started `live` run its command on its executor.
    static func stillAllowed(_ live: Execution, _ config: DaemonConfig) -> Bool {
        guard let executor = config.executor(named: live.executorName) else { return false }
        return Authorizer.decide(caller: live.caller, executor: executor, argv: live.argv, config: config).allowed
    }

    /// The `execution_kill` record of a termination because `grant` ended.
    static func killed(_ live: Execution, _ grant: TemporaryGrant, change: String) -> AuditEvent {
        AuditEvent(
            .executionKill,
            message:
                "terminated execution \(live.id) of user \(live.caller.displayName): grant \(grant.id) \(change) (grants.end_running: kill)",
            fields: [
                ("EXECUTION_ID", live.id), ("OWNER_UID", String(live.caller.uid)), ("EXECUTOR", live.executorName),
                ("SIGNAL", "TERM"), ("DECISION", "allow"), ("REASON", "grant_ended"), ("GRANT_ID", grant.id),
                ("CHANGE", change),
            ])
    }
}
