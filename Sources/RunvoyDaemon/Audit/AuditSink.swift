import Logging
import RunvoyConfig
import RunvoyKit

/// Where audit records go. The daemon writes them to the journal (`AuditLog`); tests of the request layer keep
/// them in memory.
protocol AuditSink: Sendable {
    /// Writes `event` before the action it records goes ahead, or throws `audit_unavailable` when it could not be
    /// written and the trail is fail-closed.
    func record(_ event: AuditEvent) async throws(RunvoyError)
    /// Queues `event` where a failure cannot stop anything: never waits, never throws.
    func recordBestEffort(_ event: AuditEvent)
}

extension AuditLog: AuditSink {
    /// The auditor for actions taken under `settings`: fail-closed, and waiting for the journal, as configured.
    init(_ settings: AuditSettings, logger: Logger, journal: Journal = .shared) {
        self.init(
            failClosed: settings.failClosed, writeTimeout: settings.writeTimeout, logger: logger, journal: journal)
    }
}
