import NIOCore
import NIOPosix
import RunvoyKit
import RunvoyStore

/// `backup`: an archive of the history, the stored output and the sealed secrets (administrators). It streams in
/// a task of its own, like `logs`, and sends with the connection's backpressure, so a slow client costs the daemon
/// no memory. It is audited before a byte leaves the daemon (fail-closed), and again when it ends.
struct BackupHandler: MethodHandler {
    static let method = Method.backup.rawValue
    static let params = ParamsRule.optional(default: BackupParams())
    /// Archive bytes produced per call on the thread pool (sent as several `backup_data` events).
    static let pieceBytes = 1 << 20

    func handle(_ params: BackupParams, context: RequestContext) async throws -> Outcome<NoParams> {
        try context.require(.backup)
        guard BackupGate.enter() else {
            throw RunvoyError(.busy, "a backup is already running; try again once it has finished")
        }
        let records = Records(context: context, includeKey: params.includeKey ?? false)
        do throws(RunvoyError) {
            try await records.started()
        } catch {
            BackupGate.leave()
            throw error
        }
        let key = records.includeKey ? context.executions.secrets.keyBytes : nil
        let activity = context.activity
        activity.attach()
        return .stream {
            defer {
                BackupGate.leave()
                activity.detach()
            }
            await Self.stream(key: key, records: records, context: context)
        }
    }

    /// Writes the archive to the client, then the reply with its summary.
    private static func stream(key: [UInt8]?, records: Records, context: RequestContext) async {
        let executions = context.executions
        var writer: BackupWriter?
        defer { writer?.discard() }
        do {
            let made = try await NIOThreadPool.singleton.runIfActive {
                try BackupWriter(
                    store: executions.store, softwareVersion: RunvoyProtocol.softwareVersion, key: key,
                    livePosition: { executions.running(id: $0)?.recorder.committed })
            }
            writer = made
            while let piece = try await NIOThreadPool.singleton.runIfActive({ try made.next(maxBytes: pieceBytes) }) {
                try await sendArchive(piece, sink: context.sink)
            }
            let summary = made.summary
            records.completed(summary)
            try await context.reply(
                BackupResult(
                    bytes: summary.bytes, sha256: summary.sha256, manifestSha256: summary.manifestSHA256,
                    executions: summary.executions, runningExecutions: summary.runningExecutions,
                    files: summary.files, includesKey: summary.includesKey, createdAtMs: summary.createdAtMs))
        } catch let error as StoreError {
            context.logger.error("backup failed", metadata: ["error": "\(error)"])
            records.failed(error.message)
            try? await context.reply(error: RunvoyError(.internalError, "the backup failed: \(error.message)"))
        } catch {
            records.failed("the client went away")
        }
    }

    /// Sends `piece` as `backup_data` events of at most `BackupDataEvent.maximumBytes`, base64 written straight
    /// into each frame.
    static func sendArchive(_ piece: [UInt8], sink: ConnectionSink) async throws {
        let head = Array("{\"id\":".utf8) + sink.idLiteral + Array(",\"event\":\"backup_data\",\"data\":\"".utf8)
        let tail = Array("\"}".utf8)
        var offset = 0
        while offset < piece.count {
            let count = min(BackupDataEvent.maximumBytes, piece.count - offset)
            let encoded = Base64.encodedLength(count)
            let length = head.count + encoded + tail.count
            var frame = sink.allocator.buffer(capacity: 4 + length)
            frame.writeBytes(Frame.header(length: length))
            frame.writeBytes(head)
            let start = offset
            piece.withUnsafeBytes { raw in
                _ = frame.writeWithUnsafeMutableBytes(minimumWritableBytes: encoded) { destination in
                    Base64.encode(UnsafeRawBufferPointer(rebasing: raw[start..<start + count]), into: destination)
                }
            }
            frame.writeBytes(tail)
            try await sink.outbound.write(frame)
            offset += count
        }
    }

    /// The audit records of one backup: started (fail-closed), then completed or failed.
    struct Records: Sendable {
        let auditor: any AuditSink
        let who: String
        let includeKey: Bool
        let fields: [(String, String)]

        init(context: RequestContext, includeKey: Bool) {
            self.auditor = context.auditor
            self.who = context.who
            self.includeKey = includeKey
            self.fields = context.callerFields + [("INCLUDES_KEY", includeKey ? "1" : "0")]
        }

        func started() async throws(RunvoyError) {
            try await auditor.record(
                AuditEvent(
                    .backup, message: "\(who) started a backup\(includeKey ? ", with the master key" : "")",
                    fields: fields + [("ACTION", "started"), ("DECISION", "allow")]))
            if includeKey {
                try await auditor.record(
                    AuditEvent(
                        .backupKeyExported, priority: 2,
                        message: "\(who) exported the secrets master key in a backup", fields: fields))
            }
        }

        func completed(_ summary: BackupWriter.Summary) {
            auditor.recordBestEffort(
                AuditEvent(
                    .backup, message: "\(who) completed a backup of \(summary.bytes) bytes",
                    fields: fields + [
                        ("ACTION", "completed"), ("BYTES", String(summary.bytes)), ("SHA256", summary.sha256),
                        ("EXECUTIONS", String(summary.executions)),
                    ]))
        }

        func failed(_ reason: String) {
            auditor.recordBestEffort(
                AuditEvent(
                    .backup, priority: 4, message: "\(who)'s backup failed: \(reason)",
                    fields: fields + [("ACTION", "failed"), ("REASON", reason)]))
        }
    }
}

/// One backup at a time: each takes a copy of the history in the state directory.
enum BackupGate {
    private static let running = Mutex(false)

    static func enter() -> Bool {
        running.withLock { running in
            if running { return false }
            running = true
            return true
        }
    }

    static func leave() { running.withLock { $0 = false } }
}
