import Logging
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Synchronization

/// The methods that stream the history out: `backup` (an archive of the state; administrators) and `export`
/// (execution records as events, for a SIEM). Both run in a task of their own, like `logs`, and send with the
/// connection's backpressure, so a slow client costs the daemon no memory.
extension Connection {
    /// Archive bytes produced per call on the thread pool (sent as several `backup_data` events).
    static let backupPieceBytes = 1 << 20
    /// Executions read from the history per query of an export.
    static let exportPageSize = 500

    func startBackup(
        _ params: BackupParams, id: RequestID, sink: ConnectionSink
    ) async throws -> (@Sendable () async -> Void)? {
        let config = context.config.current
        let includeKey = params.includeKey ?? false
        guard Authorizer.permits(caller, .backup, config) else {
            try await sink.send(Reply<NoParams>(id: id, error: refuse(.backup, .backup, config)))
            return nil
        }
        guard BackupGate.enter() else {
            try await sink.send(
                Reply<NoParams>(
                    id: id, error: RunvoyError(.busy, "a backup is already running; try again once it has finished")))
            return nil
        }
        let audit = AuditLog(failClosed: config.audit.failClosed, logger: context.logger)
        let fields: [(String, String)] = [
            ("CALLER_UID", String(caller.uid)), ("CALLER_USER", caller.displayName),
            ("CALLER_PID", String(caller.pid)), ("INCLUDES_KEY", includeKey ? "1" : "0"),
        ]
        let who = "\(caller.displayName) (uid \(caller.uid))"
        do throws(RunvoyError) {
            // Fail-closed, before a byte leaves the daemon.
            try await audit.record(
                AuditEvent(
                    .backup, message: "\(who) started a backup\(includeKey ? ", with the master key" : "")",
                    fields: fields + [("ACTION", "started"), ("DECISION", "allow")]))
            if includeKey {
                try await audit.record(
                    AuditEvent(
                        .backupKeyExported, priority: 2,
                        message: "\(who) exported the secrets master key in a backup", fields: fields))
            }
        } catch {
            BackupGate.leave()
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return nil
        }
        let key = includeKey ? context.executions.secrets.keyBytes : nil
        let executions = context.executions
        let logger = context.logger
        let activity = activity
        activity.attach()
        return {
            defer {
                BackupGate.leave()
                activity.detach()
            }
            var writer: BackupWriter?
            defer { writer?.discard() }
            do {
                let made = try await NIOThreadPool.singleton.runIfActive {
                    try BackupWriter(
                        store: executions.store, softwareVersion: RunvoyProtocol.softwareVersion, key: key,
                        livePosition: { executions.running(id: $0)?.recorder.committed })
                }
                writer = made
                while let piece = try await NIOThreadPool.singleton.runIfActive({
                    try made.next(maxBytes: Self.backupPieceBytes)
                }) {
                    try await Self.sendArchive(piece, sink: sink)
                }
                let summary = made.summary
                audit.recordBestEffort(
                    AuditEvent(
                        .backup, message: "\(who) completed a backup of \(summary.bytes) bytes",
                        fields: fields + [
                            ("ACTION", "completed"), ("BYTES", String(summary.bytes)), ("SHA256", summary.sha256),
                            ("EXECUTIONS", String(summary.executions)),
                        ]))
                try await sink.send(
                    Reply(
                        id: id,
                        result: BackupResult(
                            bytes: summary.bytes, sha256: summary.sha256, manifestSha256: summary.manifestSHA256,
                            executions: summary.executions, runningExecutions: summary.runningExecutions,
                            files: summary.files, includesKey: summary.includesKey,
                            createdAtMs: summary.createdAtMs)))
            } catch let error as StoreError {
                logger.error("backup failed", metadata: ["error": "\(error)"])
                audit.recordBestEffort(
                    AuditEvent(
                        .backup, priority: 4, message: "\(who)'s backup failed: \(error.message)",
                        fields: fields + [("ACTION", "failed"), ("REASON", error.message)]))
                try? await sink.send(
                    Reply<NoParams>(id: id, error: RunvoyError(.internalError, "the backup failed: \(error.message)")))
            } catch {
                audit.recordBestEffort(
                    AuditEvent(
                        .backup, priority: 4, message: "\(who)'s backup failed: the client went away",
                        fields: fields + [("ACTION", "failed"), ("REASON", "the client went away")]))
            }
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

    func startExport(
        _ params: ExportParams, id: RequestID, sink: ConnectionSink
    ) async throws -> (@Sendable () async -> Void)? {
        let config = context.config.current
        guard Authorizer.permits(caller, .viewOwn, config) || Authorizer.permits(caller, .viewAll, config) else {
            try await sink.send(Reply<NoParams>(id: id, error: refuse(.export, .viewOwn, config)))
            return nil
        }
        let scope = Authorizer.historyScope(caller, config)
        let untilMs = WallClock.milliseconds()
        let store = context.executions.store
        let activity = activity
        activity.attach()
        return {
            defer { activity.detach() }
            var after: (createdAtMs: Int64, id: String)?
            var count = 0
            do {
                while true {
                    let page = try store.exportPage(
                        after: after, sinceMs: params.sinceMs, untilMs: untilMs, ownerUid: scope,
                        limit: Self.exportPageSize)
                    for info in page { try await sink.send(ExportEvent(id: id, execution: withLiveState(info))) }
                    count += page.count
                    guard page.count == Self.exportPageSize, let last = page.last else { break }
                    after = (last.createdAtMs, last.executionId)
                }
                try await sink.send(Reply(id: id, result: ExportResult(count: count, untilMs: untilMs)))
            } catch let error as StoreError {
                context.logger.error("export failed", metadata: ["error": "\(error)"])
                try? await sink.send(
                    Reply<NoParams>(id: id, error: RunvoyError(.internalError, "the execution history cannot be read")))
            } catch {
                // The client went away; nothing more to send.
            }
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
