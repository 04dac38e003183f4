import Logging
import RunvoyKit
import RunvoyStore

/// At start, before anything is served: marks the executions a previous daemon left running as `lost`, each
/// with an audit record, ends the processes of those still running (checked to be the same process, not only
/// the same pid), and removes output folders no execution owns. Playbook runs it left running end `lost` too.
enum HistoryRecovery {
    static func run(store: ExecutionStore, audit: AuditLog, logger: Logger) throws(StoreError) {
        let left = try store.unfinished()
        let now = WallClock.milliseconds()
        for run in try store.endUnfinishedRuns(atMs: now) { audit.recordBestEffort(lostRecord(run)) }
        let unfinished = left.filter { $0.status != .queued }
        for info in left where info.status == .queued { cancelQueued(info, store: store, audit: audit, logger: logger) }
        for info in unfinished {
            let reader = OutputLogReader(directory: store.outputDirectory(info.executionId))
            var totals = OutputRecorder.Totals(
                stdoutBytes: 0, stderrBytes: 0, storedBytes: 0, droppedBytes: 0, failure: nil)
            if reader.exists {
                do throws(StoreError) {
                    let counted = try reader.totals()
                    totals = .init(
                        stdoutBytes: counted.stdout, stderrBytes: counted.stderr, storedBytes: counted.stored,
                        droppedBytes: counted.dropped, failure: nil, stdinBytes: counted.stdin)
                } catch {
                    logger.warning(
                        "stored output of a lost execution is unreadable",
                        metadata: ["execution": "\(info.executionId)", "error": "\(error)"])
                }
            }
            var orphan = LostProcess.Outcome.gone
            if let pid = info.pid, let identity = try? store.processIdentity(info.executionId),
                let user = info.runAs.split(separator: ":").first, let uid = UserDatabase.user(named: String(user))?.uid
            {
                orphan = LostProcess.end(pid: pid, startTicks: identity.startTicks, bootID: identity.bootID, uid: uid)
            }
            var reason = "runvoyd stopped while the execution was running"
            if orphan == .killed { reason += "; its process was still running and was killed at the next start" }
            do throws(StoreError) {
                try store.markLost(info.executionId, atMs: now, reason: reason, totals: totals)
            } catch {
                // A full disk must not stop runvoyd from starting: the record waits in memory and is written
                // once there is room (`status` and `list` already show it lost).
                logger.error(
                    "cannot record a lost execution yet",
                    metadata: ["execution": "\(info.executionId)", "error": "\(error)"])
            }
            audit.recordBestEffort(
                AuditEvent(
                    .executionLost, priority: 4,
                    message: "execution \(info.executionId) was lost: \(reason)",
                    fields: [
                        ("EXECUTION_ID", info.executionId), ("CALLER_UID", String(info.callerUid)),
                        ("CALLER_USER", info.callerUser), ("CALLER_PID", String(info.callerPid)),
                        ("EXECUTOR", info.executor), ("RUN_AS", info.runAs),
                        ("ARGV", JSONText.array(info.argv)), ("REASON", reason),
                        ("STDOUT_BYTES", String(totals.stdoutBytes)), ("STDERR_BYTES", String(totals.stderrBytes)),
                        ("PID", info.pid.map { String($0) } ?? ""), ("ORPHAN", orphan.rawValue),
                    ]))
        }
        if !unfinished.isEmpty {
            logger.warning("marked executions lost after an unclean stop", metadata: ["count": "\(unfinished.count)"])
        }
        let orphans = try store.removeOrphanedOutput()
        if orphans > 0 { logger.notice("removed orphaned stored output", metadata: ["count": "\(orphans)"]) }
        // Only now: the orphan sweep would take spare folders for orphans.
        store.spares.refill()
    }

    /// An execution that waited in the previous daemon's queue never ran: it is `cancelled`. (Its client lost
    /// its connection when that daemon stopped, and was told so then or saw the connection close.)
    private static func cancelQueued(_ info: ExecutionInfo, store: ExecutionStore, audit: AuditLog, logger: Logger) {
        let reason = "runvoyd stopped while the execution waited in the queue; it did not run"
        var outcome = ExecutionStore.Outcome.notStarted(reason: reason)
        outcome.status = .cancelled
        do throws(StoreError) {
            try store.finish(info.executionId, outcome)
        } catch {
            logger.error(
                "cannot record a cancelled execution yet",
                metadata: ["execution": "\(info.executionId)", "error": "\(error)"])
        }
        audit.recordBestEffort(
            AuditEvent(
                .executionCancelled, priority: 5,
                message: "execution \(info.executionId) of \(info.callerUser) left the queue: \(reason)",
                fields: [
                    ("EXECUTION_ID", info.executionId), ("CALLER_UID", String(info.callerUid)),
                    ("CALLER_USER", info.callerUser), ("CALLER_PID", String(info.callerPid)),
                    ("EXECUTOR", info.executor), ("ARGV", JSONText.array(info.argv)), ("CAUSE", "restart"),
                    ("REASON", "cancelled: \(reason)"),
                ]))
    }

    /// The end record of a playbook run a previous daemon left running.
    static func lostRecord(_ run: PlaybookRunRecord) -> AuditEvent {
        let reason = "runvoyd stopped while the run was running"
        return AuditEvent(
            .playbookRunFinished, priority: 4,
            message: "playbook run \(run.id) of '\(run.playbook)' ended lost: \(reason)",
            fields: [
                ("RUN_ID", run.id), ("PLAYBOOK", run.playbook), ("STATE", "lost"), ("REASON", reason),
                ("CALLER_UID", String(run.callerUid)), ("CALLER_USER", run.callerUser),
            ])
    }
}
