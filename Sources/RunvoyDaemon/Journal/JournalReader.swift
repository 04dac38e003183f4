import CSystemd
import Glibc
import RunvoyKit

/// Reads the daemon's own records back from the journal through libsystemd's sd-journal API (for `trace`).
///
/// Only the system journal's files are opened, and every query also matches `_UID` and `_EXE` (fields journald
/// sets from the sender's credentials and /proc entry, which a client cannot forge) and `SYSLOG_IDENTIFIER=runvoyd`,
/// so records another process wrote under runvoyd's name (another user's, or a root command's) never come back. Each match is one exact `FIELD=value`: sd-journal
/// has no patterns, and matches on different fields must all hold, so a value cannot broaden the query. The work
/// is bounded: at most `limit` records, `maxBytes` of records as they are sent (JSON, after escaping: a control
/// character takes 6 bytes there) and `timeLimit` of reading.
struct JournalReader: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// What the caller may be told (no paths or system error text), when more than "cannot be read".
        var reason: String?
    }

    var limit = TraceParams.maximumLimit
    var maxBytes = 4 << 20
    var timeLimit = Duration.seconds(2)
    /// Records left out (and not counted against `limit`): for one execution's trace, other users' refused
    /// requests that named it, which anyone could otherwise write into it.
    var skip: (@Sendable (TraceRecord) -> Bool)?
    /// At most this many records are read, those left out by `skip` included: past it the answer is truncated,
    /// so records written to be skipped cannot keep the reader scanning for its whole `timeLimit`.
    var maxScanned = 4 * TraceParams.maximumLimit

    /// The executable whose records are read (`_EXE`): this program's. Without it the trace is refused, not
    /// read without that match (fail closed).
    var executable = Self.ownExecutable

    /// This program's executable, as journald records it in `_EXE` (from the sender's /proc entry, which the
    /// sender cannot choose): with `_UID`, records another root process wrote under runvoyd's name are left out.
    static let ownExecutable: String? = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// The records that match every `FIELD=value` of `matches` (besides the daemon's own identity), oldest first.
    func records(matching matches: [(String, String)]) throws(Failure) -> TraceResult {
        guard let executable else {
            throw Failure(
                description:
                    "runvoyd cannot read its own executable's path (/proc/self/exe), so it cannot tell its records from another root process's; trace is refused",
                reason: "cannot tell runvoyd's own records (/proc/self/exe is unreadable)")
        }
        var journal: OpaquePointer?
        let opened = sd_journal_open(&journal, Int32(SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM))
        guard opened >= 0, let journal else {
            throw Failure(description: "cannot open the journal: \(SystemError.text(-opened))")
        }
        defer { sd_journal_close(journal) }
        let own = [("_UID", String(geteuid())), ("SYSLOG_IDENTIFIER", "runvoyd"), ("_EXE", executable)]
        for (field, value) in own + matches {
            let match = Array("\(field)=\(value)".utf8)
            let added = match.withUnsafeBytes { sd_journal_add_match(journal, $0.baseAddress, $0.count) }
            guard added >= 0 else {
                throw Failure(description: "bad journal match \(field): \(SystemError.text(-added))")
            }
        }
        return try read(journal)
    }

    private func read(_ journal: OpaquePointer) throws(Failure) -> TraceResult {
        let deadline = ContinuousClock.now + timeLimit
        var records: [TraceRecord] = []
        var bytes = 0
        var scanned = 0
        while true {
            let next = sd_journal_next(journal)
            guard next >= 0 else { throw Failure(description: "reading the journal: \(SystemError.text(-next))") }
            guard next > 0 else { return TraceResult(records: records, truncated: false) }
            guard records.count < limit, scanned < maxScanned, ContinuousClock.now < deadline else {
                return TraceResult(records: records, truncated: true)
            }
            scanned += 1
            let record = Self.record(journal)
            if let skip, skip(record) { continue }
            // As sent: the record's JSON, and the comma before it.
            let size = ((try? Frame.payload(record).count) ?? Int.max / 2) + 1
            guard bytes + size <= maxBytes else { return TraceResult(records: records, truncated: true) }
            records.append(record)
            bytes += size
        }
    }

    /// The entry at the cursor: its time, message, priority, `MESSAGE_ID` and `RUNVOY_*` fields.
    private static func record(_ journal: OpaquePointer) -> TraceRecord {
        var usec: UInt64 = 0
        _ = sd_journal_get_realtime_usec(journal, &usec)
        var fields: [String: String] = [:]
        var message = ""
        var priority: Int?
        var data: UnsafeRawPointer?
        var length = 0
        sd_journal_restart_data(journal)
        while sd_journal_enumerate_data(journal, &data, &length) > 0, let data {
            let bytes = UnsafeRawBufferPointer(start: data, count: length)
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let name = String(decoding: bytes[..<equals], as: UTF8.self)
            let value = String(decoding: bytes[(equals + 1)...], as: UTF8.self)
            switch name {
            case "MESSAGE": message = value
            case "PRIORITY": priority = Int(value)
            case "MESSAGE_ID": fields[name] = value
            default:
                guard name.hasPrefix("RUNVOY_") else { continue }
                fields[name] = value
            }
        }
        return TraceRecord(
            timeUsec: Int64(clamping: usec), event: fields["RUNVOY_EVENT"], message: message, priority: priority,
            fields: fields)
    }
}
