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
            // Audited once: a retry, or a second end of the same grant (a revoke racing its expiry), finds it
            // terminating already (review 2 of grants, R2 and R5).
            guard live.terminate() else { continue }
            terminated.append(live)
            audit(config).recordBestEffort(Self.killed(live, grant, change: change))
            logger.notice(
                "terminated an execution its ended grant admitted",
                metadata: ["execution": "\(live.id)", "grant": "\(grant.id)"])
        }
        return terminated
    }

    /// Whether `config` still lets the user who started `live` run its command on its executor, the way it was
    /// let run: a command that now needs approval is kept only when it had one, or when it broke glass and its
    /// user may still break glass (review 2 of grants, R4: a break-glass run that only a role grant allowed).
    static func stillAllowed(_ live: Execution, _ config: DaemonConfig) -> Bool {
        guard let executor = config.executor(named: live.executorName) else { return false }
        let decision = Authorizer.decide(caller: live.caller, executor: executor, argv: live.argv, config: config)
        guard decision.allowed else { return false }
        return decision.approval == nil || admissionHolds(live, executor, config)
    }

    /// Whether what let `live` run without asking for approval now still holds under `config`: an approval it
    /// had, or break-glass its user may still use.
    static func admissionHolds(_ live: Execution, _ executor: ExecutorConfig, _ config: DaemonConfig) -> Bool {
        switch live.admitted {
        case .approved: true
        case .breakGlass: Authorizer.mayBreakGlass(live.caller, executor, config)
        case .policy: false
        }
    }

    /// An execution launched under `planned` has just registered as running, under `current` (the configuration
    /// in force then): when `planned` gave its user a grant that `current` no longer does and it is no longer
    /// allowed, it is terminated and audited as `endRunning` does (review 2 of grants, R1: one still launching when
    /// its grant ended). Registration and `endRunning`'s list of running executions take the same lock, so
    /// either that list holds it or this sees the grants left.
    static func endLate(
        _ live: Execution, planned: DaemonConfig, current: DaemonConfig, audit: AuditLog
    ) -> Bool {
        let now = WallClock.milliseconds()
        guard current.grantSettings.endRunning == .kill,
            let grant = planned.grants.first(where: { mine in
                mine.uid == live.caller.uid
                    && !current.grants.contains { $0.id == mine.id && $0.isActive(atMs: now) }
            }),
            !stillAllowed(live, current), live.terminate()
        else { return false }
        let change = grant.isActive(atMs: now) ? "revoked" : "expired"
        audit.recordBestEffort(killed(live, grant, change: change))
        return true
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
