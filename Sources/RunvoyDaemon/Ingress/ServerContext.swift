import Logging
import RunvoyConfig

/// What every connection needs from the daemon.
struct ServerContext: Sendable {
    let config: ConfigStore
    let executions: ExecutionManager
    /// Applies the configuration file (SIGHUP, or the `reload` method).
    let reloader: ConfigReloader
    /// Bounds how many refusal records one user can write.
    let refusals: RefusalThrottle
    let logger: Logger
    /// Builds a request's auditor from the audit settings of the configuration it runs under: the one place
    /// the request layer gets one from (the journal's in the daemon; one that keeps records in memory in tests).
    let auditor: @Sendable (AuditSettings) -> any AuditSink
    /// Temporary grants (`grant`, `revoke`); nil where none are kept (tests of the request layer).
    let grants: Grants?
    /// The playbooks' schedules (`schedules`); nil where no timers are kept (tests of the request layer).
    let schedules: ScheduleManager?

    init(
        config: ConfigStore, executions: ExecutionManager, reloader: ConfigReloader, refusals: RefusalThrottle,
        logger: Logger, auditor: (@Sendable (AuditSettings) -> any AuditSink)? = nil, grants: Grants? = nil,
        schedules: ScheduleManager? = nil
    ) {
        self.config = config
        self.executions = executions
        self.reloader = reloader
        self.refusals = refusals
        self.logger = logger
        self.auditor = auditor ?? { AuditLog($0, logger: logger) }
        self.grants = grants
        self.schedules = schedules
    }
}
