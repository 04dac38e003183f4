import Glibc
import Logging
import RunvoyKit

/// Writes audit records to the journal, through the journal writer's own thread (see `Journal`).
///
/// Fail-closed by default: `record` throws when the journal does not take the entry within `writeTimeout`
/// (journald stalled) or refuses it, and callers then refuse to act. With `failClosed` off (development only) a
/// record the journal refuses goes to stderr as a `runvoyd-audit:` line instead, and the action goes ahead.
struct AuditLog: Sendable {
    var failClosed: Bool
    /// How long `record` waits for the journal to take a record.
    var writeTimeout: Duration = .seconds(5)
    let logger: Logger
    var journal: Journal = .shared

    /// Writes `event`, or throws `audit_unavailable` when it could not be written in time and the trail is
    /// fail-closed. Waiting never holds a thread: the caller's task is suspended.
    func record(_ event: AuditEvent) async throws(RunvoyError) {
        let fields = event.journalFields
        let began = ContinuousClock.now
        do {
            try await journal.send(fields, timeout: writeTimeout)
            DaemonMetrics.shared.auditWrite(.now - began, failed: false)
        } catch {
            DaemonMetrics.shared.auditWrite(.now - began, failed: true)
            if failClosed {
                logger.error(
                    "audit record could not be written; refusing",
                    metadata: ["event": "\(event.kind.rawValue)", "error": "\(error)"])
                throw RunvoyError(.auditUnavailable, "the audit trail cannot be written (\(error)); nothing was done")
            }
            Journal.writeFallback(fields)
        }
    }

    /// Queues `event` where a failure cannot stop anything (the end of an execution, shutdown): never waits, never
    /// throws. It is written once the journal reads; a record the journal refuses goes to stderr, and records lost
    /// to a long stall are counted in a `records_lost` record.
    func recordBestEffort(_ event: AuditEvent) {
        journal.post(event.journalFields, kind: .audit)
    }
}
