import Glibc
import Logging
import RunvoyKit

/// Writes audit records to the journal.
///
/// Fail-closed by default: `record` throws when the journal does not take the entry, and callers then refuse
/// to act. With `failClosed` off (development only) a record the journal refuses goes to stderr as a
/// `runvoyd-audit:` line instead, and the action goes ahead.
struct AuditLog: Sendable {
    var failClosed: Bool
    let logger: Logger

    /// Writes `event`, or throws `audit_unavailable` when it could not be written and the trail is fail-closed.
    func record(_ event: AuditEvent) throws(RunvoyError) {
        let fields = event.journalFields
        do {
            // libsystemd reports success when the journal socket does not exist; a missing socket is a failure here.
            guard Journal.isAvailable else { throw JournalError(errno: ENOENT) }
            try Journal.send(fields)
        } catch {
            if failClosed {
                logger.error(
                    "audit record could not be written; refusing",
                    metadata: ["event": "\(event.kind.rawValue)", "error": "\(error)"])
                throw RunvoyError(.auditUnavailable, "the audit trail cannot be written (\(error)); nothing was done")
            }
            Self.writeFallback(fields)
        }
    }

    /// Writes `event` where a failure cannot stop anything (the end of an execution, shutdown): logged, never thrown.
    func recordBestEffort(_ event: AuditEvent) {
        do {
            guard Journal.isAvailable else { throw JournalError(errno: ENOENT) }
            try Journal.send(event.journalFields)
        } catch {
            logger.error(
                "audit record could not be written", metadata: ["event": "\(event.kind.rawValue)", "error": "\(error)"])
            Self.writeFallback(event.journalFields)
        }
    }

    private static func writeFallback(_ fields: [(String, String)]) {
        var object: [String] = []
        for (name, value) in fields { object.append(JSONText.quoted(name) + ":" + JSONText.quoted(value)) }
        let line = "runvoyd-audit: {" + object.joined(separator: ",") + "}\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
