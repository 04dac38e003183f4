import Foundation
import GRDB
import RunvoyKit

/// A hook's run as the history keeps it.
public struct HookRunRecord: Sendable, Equatable {
    public var executionId: String?
    public var approvalId: String?
    public var info: HookRunInfo
    /// The output's bytes as the hook wrote them (at most 64 KiB).
    public var output: [UInt8]

    public init(executionId: String?, approvalId: String?, info: HookRunInfo, output: [UInt8]) {
        self.executionId = executionId
        self.approvalId = approvalId
        self.info = info
        self.output = output
    }
}

extension ExecutionStore {
    /// `v8-hooks`: each hook's run, with its output, kept as long as its execution (or request) is.
    static func registerHooks(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v8-hooks") { db in
            try db.execute(
                sql: """
                    CREATE TABLE hook_runs (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        execution_id TEXT,
                        approval_id TEXT,
                        hook TEXT NOT NULL,
                        event TEXT NOT NULL,
                        user TEXT NOT NULL,
                        started_at INTEGER NOT NULL,
                        duration_usec INTEGER NOT NULL,
                        exit_code INTEGER,
                        signal INTEGER,
                        timed_out INTEGER NOT NULL,
                        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'veto', 'error')),
                        reason TEXT,
                        output BLOB NOT NULL,
                        output_dropped INTEGER NOT NULL
                    );
                    CREATE INDEX hook_runs_by_execution ON hook_runs(execution_id);
                    """)
        }
    }

    /// Records one hook run.
    public func insertHookRun(_ run: HookRunRecord) throws(StoreError) {
        try write { db in
            let info = run.info
            try db.execute(
                sql: """
                    INSERT INTO hook_runs (execution_id, approval_id, hook, event, user, started_at, duration_usec,
                        exit_code, signal, timed_out, outcome, reason, output, output_dropped)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    run.executionId, run.approvalId, info.hook, info.event, info.user, info.startedAtMs,
                    info.durationUsec, info.exitCode, info.signal, info.timedOut, info.outcome, info.reason,
                    Data(run.output), info.outputDropped,
                ])
        }
    }

    /// The hook runs of execution `id`, in the order they ran.
    public func hookRuns(executionID id: String) throws(StoreError) -> [HookRunInfo] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM hook_runs WHERE execution_id = ? ORDER BY id", arguments: [id])
                .map { row in
                    let output: Data = row["output"]
                    return HookRunInfo(
                        hook: row["hook"], event: row["event"], user: row["user"], startedAtMs: row["started_at"],
                        durationUsec: row["duration_usec"], exitCode: row["exit_code"], signal: row["signal"],
                        timedOut: row["timed_out"], outcome: row["outcome"], reason: row["reason"],
                        output: String(decoding: output, as: UTF8.self), outputDropped: row["output_dropped"],
                        approvalId: row["approval_id"])
                }
        }
    }

    /// Hook runs whose execution retention removed (and whose request, if any, is gone too): they go with it.
    static func pruneHookRuns(_ db: Database) throws {
        try db.execute(
            sql: """
                DELETE FROM hook_runs
                WHERE (execution_id IS NULL OR NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = hook_runs.execution_id))
                  AND (approval_id IS NULL
                       OR NOT EXISTS (SELECT 1 FROM approval_requests a WHERE a.id = hook_runs.approval_id))
                """)
    }
}
