import GRDB
import RunvoyKit

/// A playbook run as the history keeps it: its steps are the executions whose `run_id` is its id.
public struct PlaybookRunRecord: Sendable, Equatable {
    public var id: String
    public var playbook: String
    public var callerUid: UInt32
    public var callerUser: String
    /// The validated parameter values as a JSON object (never secrets: parameters are secret-free by design).
    public var paramsJSON: String
    public var startedAtMs: Int64
    public var endedAtMs: Int64?
    /// `running`, `succeeded`, `failed`, `cancelled`, or `lost` (a daemon stopped during it).
    public var state: String
    /// The schedule that fired it, when one did.
    public var schedule: String?
    /// Its steps' outcomes as a JSON array, once it ended.
    public var stepsJSON: String?

    public init(
        id: String, playbook: String, callerUid: UInt32, callerUser: String, paramsJSON: String, startedAtMs: Int64,
        endedAtMs: Int64? = nil, state: String = "running", schedule: String? = nil, stepsJSON: String? = nil
    ) {
        self.stepsJSON = stepsJSON
        self.id = id
        self.playbook = playbook
        self.callerUid = callerUid
        self.callerUser = callerUser
        self.paramsJSON = paramsJSON
        self.startedAtMs = startedAtMs
        self.endedAtMs = endedAtMs
        self.state = state
        self.schedule = schedule
    }
}

extension ExecutionStore {
    /// `v9-playbook-runs`: one row per playbook run, and each execution's run.
    static func registerPlaybookRuns(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v9-playbook-runs") { db in
            try db.execute(
                sql: """
                    CREATE TABLE playbook_runs (
                        id TEXT PRIMARY KEY,
                        playbook TEXT NOT NULL,
                        caller_uid INTEGER NOT NULL,
                        caller_user TEXT NOT NULL,
                        params TEXT NOT NULL,
                        started_at INTEGER NOT NULL,
                        ended_at INTEGER,
                        state TEXT NOT NULL,
                        schedule TEXT,
                        steps TEXT
                    );
                    ALTER TABLE executions ADD COLUMN run_id TEXT;
                    CREATE INDEX executions_by_run ON executions(run_id) WHERE run_id IS NOT NULL;
                    """)
        }
    }

    /// Records a run that starts now.
    public func insertRun(_ run: PlaybookRunRecord) throws(StoreError) {
        try write { db in
            try db.execute(
                sql: """
                    INSERT INTO playbook_runs (id, playbook, caller_uid, caller_user, params, started_at, ended_at,
                        state, schedule)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    run.id, run.playbook, Int64(run.callerUid), run.callerUser, run.paramsJSON, run.startedAtMs,
                    run.endedAtMs, run.state, run.schedule,
                ])
        }
    }

    /// Records how a run ended, with its steps' outcomes (a JSON array).
    public func finishRun(_ id: String, state: String, atMs: Int64, stepsJSON: String) throws(StoreError) {
        try write { db in
            try db.execute(
                sql: "UPDATE playbook_runs SET state = ?, ended_at = ?, steps = ? WHERE id = ?",
                arguments: [state, atMs, stepsJSON, id])
        }
    }

    /// The run `id`, nil when the history has none.
    public func run(_ id: String) throws(StoreError) -> PlaybookRunRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM playbook_runs WHERE id = ?", arguments: [id]).map(Self.runRecord)
        }
    }

    static func runRecord(_ row: Row) -> PlaybookRunRecord {
        PlaybookRunRecord(
            id: row["id"], playbook: row["playbook"],
            callerUid: UInt32(truncatingIfNeeded: row["caller_uid"] as Int64), callerUser: row["caller_user"],
            paramsJSON: row["params"], startedAtMs: row["started_at"], endedAtMs: row["ended_at"],
            state: row["state"], schedule: row["schedule"], stepsJSON: row["steps"])
    }

    /// Runs a daemon that stopped left `running`: they end `lost` at `atMs`. Returns them as they were (for their
    /// audit records).
    @discardableResult
    public func endUnfinishedRuns(atMs: Int64) throws(StoreError) -> [PlaybookRunRecord] {
        try write { db in
            let left = try Row.fetchAll(
                db, sql: "SELECT * FROM playbook_runs WHERE state = 'running' ORDER BY id"
            ).map(Self.runRecord)
            try db.execute(
                sql: "UPDATE playbook_runs SET state = 'lost', ended_at = ? WHERE state = 'running'", arguments: [atMs])
            return left
        }
    }

    /// Runs that ended before `endedBefore` and none of whose steps the history keeps: they go with their steps.
    static func prunePlaybookRuns(_ db: Database, endedBefore: Int64) throws {
        try db.execute(
            sql: """
                DELETE FROM playbook_runs
                WHERE ended_at IS NOT NULL AND ended_at < ?
                  AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.run_id = playbook_runs.id)
                """,
            arguments: [endedBefore])
    }
}
