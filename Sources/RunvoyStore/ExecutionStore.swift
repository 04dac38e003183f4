import GRDB
import Glibc
import RunvoyKit

/// The durable execution history: one SQLite database (WAL mode) under the daemon's state directory, beside
/// the stored output of each execution.
///
/// Calls block the calling thread for the duration of one small transaction (tens of microseconds).
public final class ExecutionStore: Sendable {
    /// The SQLite file.
    public let databasePath: String
    /// The folder holding one folder of stored output per execution.
    public let outputRoot: String
    /// Output folders made ahead of time (see `makeRecorder`).
    public let spares: OutputSpares
    let pool: DatabasePool
    /// A connection of its own for checkpoints, so their fsync never holds up the writer.
    private let checkpointer: DatabaseQueue
    /// Ends of executions that could not be written yet (the disk is full, say), by execution id. They are written
    /// with the next write that succeeds and by `flushPending()`, and laid over what `get` and `list` read, so a
    /// finished execution is never reported as running while its end waits.
    private let pending = Mutex<[String: Outcome]>([:])

    /// Opens (creating and migrating when needed) the history under `stateDirectory`.
    public init(stateDirectory: String, walRestartFrames: Int = 8192) throws(StoreError) {
        self.walRestartFrames = walRestartFrames
        databasePath = stateDirectory + "/history.sqlite"
        outputRoot = stateDirectory + "/output"
        spares = OutputSpares(root: outputRoot)
        do {
            try FileSystem.makeDirectories(outputRoot, mode: 0o700)
        } catch {
            throw StoreError(.output, "cannot create \(outputRoot): \(error)")
        }
        try Self.makePrivate(databasePath)
        var configuration = Configuration()
        configuration.label = "runvoy-history"
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // WAL + NORMAL: a crash of the daemon loses nothing committed; only a power cut can lose the last
            // transactions, and none of these settings can corrupt the database.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Checkpoints (which fsync) run from `checkpoint()` in the background, never inside an `exec`.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            // A small page cache per connection (SQLite's default is 2 MB): writes append at the end of the
            // table and its indexes, and reads fetch a page of results, so few pages are hot; the kernel's page
            // cache holds the rest. It keeps a daemon that has run many executions close to its idle size.
            try db.execute(sql: "PRAGMA cache_size = -\(Self.pageCacheKiB)")
            try db.execute(sql: "PRAGMA journal_size_limit = \(Self.walSizeLimit)")
        }
        do {
            pool = try DatabasePool(path: databasePath, configuration: configuration)
            try Self.migrator.migrate(pool)
            checkpointer = try DatabaseQueue(path: databasePath, configuration: configuration)
        } catch {
            throw StoreError(.database, "cannot open the execution history \(databasePath): \(error)")
        }
    }

    /// Each connection's page cache, in KiB.
    static let pageCacheKiB = 512

    /// Write-ahead log frames (pages) past which a checkpoint empties the log (see `checkpoint()`): 32 MB.
    let walRestartFrames: Int

    /// What the write-ahead log file is cut back to whenever SQLite starts it over, in bytes.
    static let walSizeLimit = 8 << 20

    /// Creates the database file 0600 before SQLite opens it (SQLite would create it 0644 less the umask), since
    /// SQLite gives its `-wal` and `-shm` files the database's mode; makes existing ones of ours 0600 too. The
    /// history holds every caller's argv and the sealed secrets.
    static func makePrivate(_ databasePath: String) throws(StoreError) {
        for (index, path) in [databasePath, databasePath + "-wal", databasePath + "-shm"].enumerated() {
            let create = index == 0 ? O_CREAT : 0
            let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | create, 0o600)
            guard fd >= 0 else {
                if index > 0 && errno == ENOENT { continue }
                throw StoreError(.database, "cannot open \(path): \(SystemError.text())")
            }
            defer { close(fd) }
            var info = stat()
            if fstat(fd, &info) == 0 && info.st_uid == geteuid() && info.st_mode & 0o077 != 0 && fchmod(fd, 0o600) != 0
            {
                throw StoreError(.database, "cannot make \(path) mode 0600: \(SystemError.text())")
            }
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE executions (
                        id TEXT PRIMARY KEY NOT NULL,
                        status TEXT NOT NULL,
                        caller_uid INTEGER NOT NULL,
                        caller_user TEXT NOT NULL,
                        caller_pid INTEGER NOT NULL,
                        executor TEXT NOT NULL,
                        run_as TEXT NOT NULL,
                        argv TEXT NOT NULL,
                        cwd TEXT NOT NULL,
                        env_keys TEXT NOT NULL,
                        pid INTEGER,
                        exit_code INTEGER,
                        signal INTEGER,
                        created_at INTEGER NOT NULL,
                        started_at INTEGER,
                        finished_at INTEGER,
                        duration_usec INTEGER,
                        stdout_bytes INTEGER NOT NULL DEFAULT 0,
                        stderr_bytes INTEGER NOT NULL DEFAULT 0,
                        stored_bytes INTEGER NOT NULL DEFAULT 0,
                        dropped_bytes INTEGER NOT NULL DEFAULT 0,
                        output_pruned INTEGER NOT NULL DEFAULT 0,
                        config_digest TEXT NOT NULL,
                        reason TEXT
                    );
                    CREATE INDEX executions_by_time ON executions(created_at, id);
                    CREATE INDEX executions_by_caller ON executions(caller_uid, created_at, id);
                    """)
        }
        migrator.registerMigration("v2-secrets") { db in
            try db.execute(
                sql: """
                    CREATE TABLE secrets (
                        name TEXT PRIMARY KEY NOT NULL,
                        sealed BLOB NOT NULL,
                        description TEXT,
                        owner_uid INTEGER NOT NULL,
                        owner_user TEXT NOT NULL,
                        updated_by TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,
                        version INTEGER NOT NULL
                    );
                    CREATE TABLE store_meta (
                        key TEXT PRIMARY KEY NOT NULL,
                        value BLOB NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v3-process-identity") { db in
            // Which process an execution's pid named: its start time in clock ticks after boot, and the boot.
            try db.execute(
                sql: """
                    ALTER TABLE executions ADD COLUMN start_ticks INTEGER;
                    ALTER TABLE executions ADD COLUMN boot_id TEXT;
                    """)
        }
        migrator.registerMigration("v4-usage") { db in
            // What an execution's processes used (`ResourceUsage`): NULL where the source gave no figure, and
            // `usage_source` NULL for executions without accounting (running, failed to start, lost, older).
            try db.execute(
                sql: """
                    ALTER TABLE executions ADD COLUMN usage_source TEXT;
                    ALTER TABLE executions ADD COLUMN cpu_user_usec INTEGER;
                    ALTER TABLE executions ADD COLUMN cpu_system_usec INTEGER;
                    ALTER TABLE executions ADD COLUMN memory_peak_bytes INTEGER;
                    ALTER TABLE executions ADD COLUMN tasks_peak INTEGER;
                    ALTER TABLE executions ADD COLUMN io_read_bytes INTEGER;
                    ALTER TABLE executions ADD COLUMN io_write_bytes INTEGER;
                    """)
        }
        migrator.registerMigration("v5-edits-terminal") { db in
            // `runvoyctl edit` records: the file and its SHA-256 before and after (null for commands); a terminal
            // execution's window size at the start (null for pipes).
            try db.execute(
                sql: """
                    ALTER TABLE executions ADD COLUMN edit_path TEXT;
                    ALTER TABLE executions ADD COLUMN edit_sha256_before TEXT;
                    ALTER TABLE executions ADD COLUMN edit_sha256_after TEXT;
                    ALTER TABLE executions ADD COLUMN terminal_rows INTEGER;
                    ALTER TABLE executions ADD COLUMN terminal_cols INTEGER;
                    """)
        }
        migrator.registerMigration("v6-stdin-bytes") { db in
            // Input bytes of an execution whose executor records input (`record_input`); null where it does not.
            try db.execute(sql: "ALTER TABLE executions ADD COLUMN stdin_bytes INTEGER")
        }
        registerApprovals(&migrator)
        registerGrants(&migrator)
        registerHooks(&migrator)
        registerPlaybookRuns(&migrator)
        return migrator
    }

    /// The folder of one execution's stored output.
    public func outputDirectory(_ id: String) -> String { outputRoot + "/" + id }

    /// A recorder for an execution's output, drawing on the spare folders.
    public func makeRecorder(_ id: String, cap: Int64) -> OutputRecorder {
        OutputRecorder(directory: outputDirectory(id), cap: cap, spares: spares)
    }

    /// Records a new execution.
    public func insert(_ info: ExecutionInfo) throws(StoreError) {
        try write { db in try Self.insertExecution(db, info) }
    }

    static func insertExecution(_ db: Database, _ info: ExecutionInfo) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO executions (id, status, caller_uid, caller_user, caller_pid, executor, run_as, argv, cwd,
                    env_keys, pid, exit_code, signal, created_at, started_at, finished_at, duration_usec,
                    stdout_bytes, stderr_bytes, stored_bytes, dropped_bytes, output_pruned, config_digest, reason,
                    edit_path, edit_sha256_before, edit_sha256_after, terminal_rows, terminal_cols, stdin_bytes, run_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(
            arguments: [
                info.executionId, info.status.rawValue, Int64(info.callerUid), info.callerUser,
                Int64(info.callerPid), info.executor, info.runAs, JSONText.array(info.argv),
                info.workingDirectory, JSONText.array(info.envKeys), info.pid.map { Int64($0) },
                info.exitCode.map { Int64($0) }, info.signal.map { Int64($0) }, info.createdAtMs, info.startedAtMs,
                info.finishedAtMs, info.durationUsec, info.stdoutBytes, info.stderrBytes, info.storedBytes,
                info.droppedBytes, info.outputPruned, info.configDigest, info.reason, info.edit?.path,
                info.edit?.sha256Before, info.edit?.sha256After, info.terminal.map { Int64($0.rows) },
                info.terminal.map { Int64($0.cols) }, info.stdinBytes, info.runId,
            ])
    }

    /// How an execution ended.
    public struct Outcome: Sendable {
        public var status: ExecutionStatus
        public var pid: Int32?
        public var exitCode: Int32?
        public var signal: Int32?
        public var startedAtMs: Int64?
        public var finishedAtMs: Int64
        public var durationUsec: Int64?
        public var totals: OutputRecorder.Totals
        public var reason: String?
        /// What the execution's processes used, where known.
        public var usage: ResourceUsage?

        public init(
            status: ExecutionStatus, pid: Int32?, exitCode: Int32?, signal: Int32?, startedAtMs: Int64?,
            finishedAtMs: Int64, durationUsec: Int64?, totals: OutputRecorder.Totals, reason: String?,
            usage: ResourceUsage? = nil
        ) {
            self.usage = usage
            self.status = status
            self.pid = pid
            self.exitCode = exitCode
            self.signal = signal
            self.startedAtMs = startedAtMs
            self.finishedAtMs = finishedAtMs
            self.durationUsec = durationUsec
            self.totals = totals
            self.reason = reason
        }
    }

    /// Records the end of an execution. When it cannot be written now, the outcome is kept in memory, shown by
    /// `get` and `list`, and written by the next write that succeeds or `flushPending()`; the error is thrown so the
    /// caller can say so.
    public func finish(_ id: String, _ outcome: Outcome) throws(StoreError) {
        do {
            try write { db in try Self.update(db, id, outcome) }
        } catch {
            pending.withLock { $0[id] = outcome }
            throw StoreError(error.code, error.message + " (the end is kept in memory and written once possible)")
        }
    }

    /// Ends of executions waiting to be written.
    public var pendingCount: Int { pending.withLock { $0.count } }

    /// Writes the ends of executions kept in memory; true when none is left. Run it regularly in the background.
    @discardableResult
    public func flushPending() -> Bool {
        guard pendingCount > 0 else { return true }
        do {
            try write { _ in }
            return true
        } catch {
            return false
        }
    }

    private static func update(_ db: Database, _ id: String, _ outcome: Outcome) throws {
        try db.cachedStatement(
            sql: """
                UPDATE executions SET status = ?, pid = COALESCE(?, pid), exit_code = ?, signal = ?,
                    started_at = COALESCE(?, started_at), finished_at = ?, duration_usec = ?, stdout_bytes = ?,
                    stderr_bytes = ?, stored_bytes = ?, dropped_bytes = ?, reason = ?, usage_source = ?,
                    cpu_user_usec = ?, cpu_system_usec = ?, memory_peak_bytes = ?, tasks_peak = ?, io_read_bytes = ?,
                    io_write_bytes = ?, stdin_bytes = CASE WHEN stdin_bytes IS NULL THEN NULL ELSE ? END
                WHERE id = ?
                """
        ).execute(
            arguments: [
                outcome.status.rawValue, outcome.pid.map { Int64($0) }, outcome.exitCode.map { Int64($0) },
                outcome.signal.map { Int64($0) }, outcome.startedAtMs, outcome.finishedAtMs, outcome.durationUsec,
                outcome.totals.stdoutBytes, outcome.totals.stderrBytes, outcome.totals.storedBytes,
                outcome.totals.droppedBytes, outcome.reason ?? outcome.totals.failure, outcome.usage?.source,
                outcome.usage?.cpuUserUsec, outcome.usage?.cpuSystemUsec, outcome.usage?.memoryPeakBytes,
                outcome.usage?.tasksPeak, outcome.usage?.ioReadBytes, outcome.usage?.ioWriteBytes,
                outcome.totals.stdinBytes, id,
            ])
    }

    /// `info` with its end laid over it when that end is still waiting to be written.
    func withPending(_ info: ExecutionInfo, _ waiting: [String: Outcome]) -> ExecutionInfo {
        guard let outcome = waiting[info.executionId] else { return info }
        var info = info
        info.status = outcome.status
        info.pid = outcome.pid ?? info.pid
        info.exitCode = outcome.exitCode
        info.signal = outcome.signal
        info.startedAtMs = outcome.startedAtMs ?? info.startedAtMs
        info.finishedAtMs = outcome.finishedAtMs
        info.durationUsec = outcome.durationUsec
        info.stdoutBytes = outcome.totals.stdoutBytes
        info.stderrBytes = outcome.totals.stderrBytes
        info.storedBytes = outcome.totals.storedBytes
        info.droppedBytes = outcome.totals.droppedBytes
        info.stdinBytes = info.stdinBytes.map { _ in outcome.totals.stdinBytes }
        info.reason = outcome.reason ?? outcome.totals.failure
        info.usage = outcome.usage
        return info
    }

    /// Records the pid and start time of an execution whose process now exists.
    public func started(
        _ id: String, pid: Int32, atMs: Int64, startTicks: Int64? = nil, bootID: String? = nil
    ) throws(StoreError) {
        try write { db in
            try db.execute(
                sql: "UPDATE executions SET pid = ?, started_at = ?, start_ticks = ?, boot_id = ? WHERE id = ?",
                arguments: [Int64(pid), atMs, startTicks, bootID, id])
        }
    }

    /// The identity of an execution's process as `started` recorded it: its start time in clock ticks after
    /// boot and the boot's id; nil when none was recorded.
    public func processIdentity(_ id: String) throws(StoreError) -> (startTicks: Int64, bootID: String)? {
        try read { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT start_ticks, boot_id FROM executions WHERE id = ?", arguments: [id]),
                let ticks = row["start_ticks"] as Int64?, let boot = row["boot_id"] as String?
            else { return nil }
            return (ticks, boot)
        }
    }

    /// One execution by id.
    public func get(_ id: String) throws(StoreError) -> ExecutionInfo? {
        let found = try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM executions WHERE id = ?", arguments: [id]).map(Self.info)
        }
        return found.map { withPending($0, pending.withLock { $0 }) }
    }

    /// Executions newest first, filtered by `params`; only those of `ownerUid` when it is given.
    public func list(_ params: ListParams, ownerUid: UInt32?) throws(StoreError) -> [ExecutionInfo] {
        var found: [ExecutionInfo] = []
        _ = try list(params, ownerUid: ownerUid, before: nil) { info in
            found.append(info)
            return true
        }
        return found
    }

    /// Executions newest first (by creation time, then id), filtered by `params`, only those of `ownerUid` when it
    /// is given and only those that sort after `before` when it is given, read one at a time and handed to `take`
    /// until it refuses one (returns false) or `params.limit` were taken. Returns whether another execution matched
    /// after the last one taken. Only one row is decoded at a time, so the memory used does not grow with the
    /// history or with what `take` leaves out.
    public func list(
        _ params: ListParams, ownerUid: UInt32?, before: (createdAtMs: Int64, id: String)?,
        take: (ExecutionInfo) -> Bool
    ) throws(StoreError) -> Bool {
        let waiting = pending.withLock { $0 }
        let (sql, arguments) = Self.listQuery(params, ownerUid: ownerUid, before: before, hasPending: !waiting.isEmpty)
        let statuses = params.status ?? []
        let limit = min(max(params.limit ?? ListParams.defaultLimit, 1), ListParams.maximumLimit)
        return try read { db in
            let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            var taken = 0
            while let row = try rows.next() {
                let info = withPending(Self.info(row), waiting)
                // An execution whose end waits to be written is still `running` in the database.
                guard statuses.isEmpty || statuses.contains(info.status) else { continue }
                guard taken < limit, take(info) else { return true }
                taken += 1
            }
            return false
        }
    }

    /// The query of `list`, newest first.
    static func listQuery(
        _ params: ListParams, ownerUid: UInt32?, before: (createdAtMs: Int64, id: String)?, hasPending: Bool
    ) -> (String, StatementArguments) {
        var clauses: [String] = []
        var arguments = StatementArguments()
        if let ownerUid {
            clauses.append("caller_uid = ?")
            _ = arguments.append(contentsOf: [Int64(ownerUid)])
        }
        if var statuses = params.status, !statuses.isEmpty {
            if hasPending && !statuses.contains(.running) { statuses.append(.running) }
            clauses.append("status IN (" + statuses.map { _ in "?" }.joined(separator: ",") + ")")
            _ = arguments.append(contentsOf: StatementArguments(statuses.map(\.rawValue)))
        }
        if let user = params.user {
            clauses.append("caller_user = ?")
            _ = arguments.append(contentsOf: [user])
        }
        if let executor = params.executor {
            clauses.append("executor = ?")
            _ = arguments.append(contentsOf: [executor])
        }
        if let run = params.runId {
            clauses.append("run_id = ?")
            _ = arguments.append(contentsOf: [run])
        }
        if let since = params.sinceMs {
            clauses.append("created_at >= ?")
            _ = arguments.append(contentsOf: [since])
        }
        if let before {
            clauses.append("(created_at, id) < (?, ?)")
            _ = arguments.append(contentsOf: [before.createdAtMs, before.id])
        }
        let filter = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        return ("SELECT * FROM executions \(filter) ORDER BY created_at DESC, id DESC", arguments)
    }

    /// When the execution `id` was created, nil when the history has no such execution.
    public func createdAt(_ id: String) throws(StoreError) -> Int64? {
        try read { db in
            try Int64.fetchOne(db, sql: "SELECT created_at FROM executions WHERE id = ?", arguments: [id])
        }
    }

    /// Executions the previous daemon left running or queued: the ones a restart must mark `lost`.
    public func unfinished() throws(StoreError) -> [ExecutionInfo] {
        try read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM executions WHERE status IN ('running', 'queued') ORDER BY created_at"
            ).map(Self.info)
        }
    }

    /// Marks an unfinished execution `lost`, with output totals counted from its files.
    /// When it cannot be written now, it is kept in memory like the end of an execution (see `finish`).
    public func markLost(_ id: String, atMs: Int64, reason: String, totals: OutputRecorder.Totals) throws(StoreError) {
        do {
            try markLostNow(id, atMs: atMs, reason: reason, totals: totals)
        } catch {
            let outcome = Outcome(
                status: .lost, pid: nil, exitCode: nil, signal: nil, startedAtMs: nil, finishedAtMs: atMs,
                durationUsec: nil, totals: totals, reason: reason)
            pending.withLock { $0[id] = outcome }
            throw StoreError(error.code, error.message + " (kept in memory and written once possible)")
        }
    }

    private func markLostNow(
        _ id: String, atMs: Int64, reason: String, totals: OutputRecorder.Totals
    ) throws(StoreError) {
        try write { db in
            try db.execute(
                sql: """
                    UPDATE executions SET status = 'lost', finished_at = ?, reason = ?, stdout_bytes = ?,
                        stderr_bytes = ?, stored_bytes = ?, dropped_bytes = ?,
                        stdin_bytes = CASE WHEN stdin_bytes IS NULL THEN NULL ELSE ? END
                    WHERE id = ? AND status IN ('running', 'queued')
                    """,
                arguments: [
                    atMs, reason, totals.stdoutBytes, totals.stderrBytes, totals.storedBytes, totals.droppedBytes,
                    totals.stdinBytes, id,
                ])
        }
    }

    /// What a retention pass removed.
    public struct PruneReport: Sendable, Equatable {
        /// Executions deleted (record and output) because they were older than the age limit.
        public var deleted: [String] = []
        /// Executions whose stored output was removed to bring the total under the size limit.
        public var outputPruned: [String] = []
        /// Stored bytes freed.
        public var freedBytes: Int64 = 0
    }

    /// What one execution's record counts towards `history.max_total_bytes` besides its stored output: its argv
    /// and environment names as stored, and this much for the rest of the row and its index entries.
    public static let recordOverheadBytes: Int64 = 256

    /// SQL for the bytes one record counts (see `recordOverheadBytes`), its request for approval's (its stored
    /// parameters and what approvers are shown) included.
    static let recordBytesSQL = """
        (length(CAST(argv AS BLOB)) + length(CAST(env_keys AS BLOB)) + \(recordOverheadBytes)
            + COALESCE((SELECT length(CAST(a.params AS BLOB)) + length(CAST(a.summary AS BLOB))
                + COALESCE(length(CAST(a.reason AS BLOB)), 0) FROM approval_requests a WHERE a.id = executions.id), 0))
        """

    /// Applies retention: deletes finished executions created before `olderThanMs` (record and output); then,
    /// while the history (stored output plus records, see `recordOverheadBytes`) is over `maxTotalBytes`, removes
    /// the stored output of the oldest finished executions, and if that is not enough, deletes the oldest finished
    /// executions' records too. Running executions are never touched. A request for approval goes with its
    /// execution, and one of no execution (a grant's) once it ended before `olderThanMs`; so does a temporary grant
    /// that ended before then.
    public func prune(olderThanMs: Int64?, maxTotalBytes: Int64?) throws(StoreError) -> PruneReport {
        var report = PruneReport()
        try write { db in
            if let olderThanMs {
                let rows = try Row.fetchAll(
                    db, sql: "SELECT id, stored_bytes FROM executions WHERE \(Self.finalSQL) AND created_at < ?",
                    arguments: [olderThanMs])
                for row in rows {
                    report.deleted.append(row["id"])
                    report.freedBytes += row["stored_bytes"] as Int64
                }
                try db.execute(
                    sql: "DELETE FROM executions WHERE \(Self.finalSQL) AND created_at < ?", arguments: [olderThanMs])
            }
            if let maxTotalBytes { try Self.pruneToSize(db, maxTotalBytes, &report) }
            try Self.pruneApprovals(db, olderThanMs: olderThanMs)
            if let olderThanMs { try Self.pruneGrants(db, endedBefore: olderThanMs) }
            try Self.pruneHookRuns(db)
        }
        for id in report.deleted + report.outputPruned { FileSystem.removeTree(outputDirectory(id)) }
        return report
    }

    /// Executions retention may remove: those that ended.
    static let finalSQL = "status NOT IN ('running', 'queued', 'awaiting_approval')"

    /// SQL for the bytes of hook output stored with one execution.
    static let hookBytesSQL = """
        (SELECT COALESCE(SUM(length(h.output)), 0) FROM hook_runs h WHERE h.execution_id = executions.id)
        """

    /// While the history is over `maxTotalBytes`: the oldest finished executions' stored output (and their hooks'
    /// output, counted too: review of hooks, H5) goes, then, if that is not enough (long argv), their records.
    private static func pruneToSize(_ db: Database, _ maxTotalBytes: Int64, _ report: inout PruneReport) throws {
        var total =
            try Int64.fetchOne(
                db,
                sql: """
                    SELECT COALESCE(SUM(stored_bytes), 0) + COALESCE(SUM(\(recordBytesSQL)), 0)
                        + COALESCE(SUM(\(hookBytesSQL)), 0) FROM executions
                    """) ?? 0
        if total > maxTotalBytes {
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, stored_bytes, output_pruned, \(hookBytesSQL) AS hook_bytes FROM executions
                    WHERE \(finalSQL) AND (output_pruned = 0 OR hook_bytes > 0) ORDER BY created_at, id
                    """)
            for row in rows where total > maxTotalBytes {
                let id: String = row["id"]
                let freed = (row["stored_bytes"] as Int64) + (row["hook_bytes"] as Int64)
                try db.execute(
                    sql: "UPDATE executions SET output_pruned = 1, stored_bytes = 0 WHERE id = ?", arguments: [id])
                try db.execute(
                    sql: """
                        UPDATE hook_runs SET output_dropped = output_dropped + length(output), output = x''
                        WHERE execution_id = ?
                        """, arguments: [id])
                if (row["output_pruned"] as Bool) == false { report.outputPruned.append(id) }
                report.freedBytes += freed
                total -= freed
            }
        }
        guard total > maxTotalBytes else { return }
        // The records themselves are over the limit (long argv): the oldest finished ones go.
        let rows = try Row.fetchAll(
            db,
            sql: "SELECT id, \(recordBytesSQL) AS bytes FROM executions WHERE \(finalSQL) ORDER BY created_at, id")
        for row in rows where total > maxTotalBytes {
            let id: String = row["id"]
            try db.execute(sql: "DELETE FROM executions WHERE id = ?", arguments: [id])
            report.deleted.append(id)
            report.outputPruned.removeAll { $0 == id }
            total -= row["bytes"] as Int64
            report.freedBytes += row["bytes"] as Int64
        }
    }

    /// Requests for approval whose execution retention removed (with their answers), and ended requests of no
    /// execution older than `olderThanMs`: what they hold (argv, the caller's environment) is forgotten with the
    /// rest of the history (review of approvals, F4).
    private static func pruneApprovals(_ db: Database, olderThanMs: Int64?) throws {
        let orphaned = """
            kind IN ('exec', 'break_glass') AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = approval_requests.id)
            """
        var condition = orphaned
        if let olderThanMs {
            condition += """
                 OR (kind NOT IN ('exec', 'break_glass') AND state NOT IN ('pending', 'approved', 'break_glass')
                    AND created_at < \(olderThanMs))
                """
        }
        try db.execute(
            sql: """
                DELETE FROM approval_answers WHERE request_id IN (SELECT id FROM approval_requests WHERE \(condition))
                """)
        try db.execute(sql: "DELETE FROM approval_requests WHERE \(condition)")
    }

    /// Removes output folders that no execution in the history owns (left by a crash between a delete and the
    /// removal of the files, or spare folders of an earlier run). Call it before `spares.refill()`. Returns how
    /// many were removed.
    public func removeOrphanedOutput() throws(StoreError) -> Int {
        let known = try read { db in
            Set(try String.fetchAll(db, sql: "SELECT id FROM executions WHERE output_pruned = 0"))
        }
        var removed = 0
        for name in FileSystem.entries(outputRoot) where !known.contains(name) {
            FileSystem.removeTree(outputDirectory(name))
            removed += 1
        }
        return removed
    }

    /// Copies committed transactions from the write-ahead log into the database file (and fsyncs it), on a
    /// connection of its own. Call it regularly from the background: writers never checkpoint themselves.
    ///
    /// A passive checkpoint never waits, but under a steady stream of writes it never catches up with the last one
    /// either, and SQLite starts the log over only once it has: the log then grew without end (750 MB and its
    /// shared-memory index resident after 40,000 back-to-back executions). Once it holds more than
    /// `walRestartFrames`, a truncating checkpoint waits for the writer's current transaction (one small row),
    /// copies what is left and empties the file.
    public func checkpoint() throws(StoreError) {
        do {
            try checkpointer.writeWithoutTransaction { db in
                let (logged, _) = try db.checkpoint(.passive)
                if logged > walRestartFrames {
                    _ = try db.checkpoint(.truncate)
                }
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            // Another connection held a lock the checkpoint needs (past the busy timeout, for the truncating
            // one): whatever was not copied is copied by the next one.
        } catch {
            throw StoreError(.database, "cannot checkpoint the execution history: \(error)")
        }
    }

    /// Gives back the memory SQLite holds beyond what it needs: page caches, prepared statements and idle reader
    /// connections (reopened on the next read). For an idle daemon; it waits for the reads and writes under way.
    public func releaseMemory() {
        pool.releaseMemory()
        checkpointer.releaseMemory()
    }

    /// Number of executions in the history.
    public func count() throws(StoreError) -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM executions") ?? 0 }
    }

    /// SQLite's own consistency check: `["ok"]` when the database is sound.
    /// `PRAGMA quick_check`: `["ok"]` when the database's structure is sound (`health` runs it).
    public func quickCheck() throws(StoreError) -> [String] {
        try read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
    }

    public func integrityCheck() throws(StoreError) -> [String] {
        try read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }

    /// Runs several inserts in one transaction (benchmarks and tests that need a large history).
    public func insertMany(_ infos: [ExecutionInfo]) throws(StoreError) {
        for info in infos { try insert(info) }
    }

    /// Runs `body` in a write transaction, after writing the ends of executions that wait in memory (in the same
    /// transaction: when there is room for one, there is room for both).
    func write<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        let waiting = pending.withLock { $0 }
        do {
            let result = try pool.write { db in
                for (id, outcome) in waiting { try Self.update(db, id, outcome) }
                return try body(db)
            }
            if !waiting.isEmpty {
                pending.withLock { current in
                    for (id, outcome) in waiting where current[id]?.finishedAtMs == outcome.finishedAtMs {
                        current[id] = nil
                    }
                }
            }
            return result
        } catch {
            throw StoreError(.database, "cannot write the execution history: \(error)")
        }
    }

    /// Free bytes on the file system that holds the history (for the caller's reserve check), nil when unknown.
    public var freeBytes: Int64? {
        var info = statvfs()
        guard statvfs(outputRoot, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try pool.read(body)
        } catch {
            throw StoreError(.database, "cannot read the execution history: \(error)")
        }
    }

    static func stringArray(_ json: String) -> [String] {
        var text = json
        let value = text.withUTF8 { JSONValue.parse(UnsafeRawBufferPointer($0)) }
        guard case .array(let items) = value else { return [] }
        return items.compactMap(\.string)
    }

    static func info(_ row: Row) -> ExecutionInfo {
        ExecutionInfo(
            executionId: row["id"], status: ExecutionStatus(rawValue: row["status"]) ?? .lost,
            callerUid: UInt32(truncatingIfNeeded: row["caller_uid"] as Int64), callerUser: row["caller_user"],
            callerPid: Int32(truncatingIfNeeded: row["caller_pid"] as Int64), executor: row["executor"],
            runAs: row["run_as"], argv: stringArray(row["argv"]), workingDirectory: row["cwd"],
            envKeys: stringArray(row["env_keys"]), pid: (row["pid"] as Int64?).map { Int32(truncatingIfNeeded: $0) },
            exitCode: (row["exit_code"] as Int64?).map { Int32(truncatingIfNeeded: $0) },
            signal: (row["signal"] as Int64?).map { Int32(truncatingIfNeeded: $0) }, createdAtMs: row["created_at"],
            startedAtMs: row["started_at"], finishedAtMs: row["finished_at"], durationUsec: row["duration_usec"],
            stdoutBytes: row["stdout_bytes"], stderrBytes: row["stderr_bytes"], storedBytes: row["stored_bytes"],
            droppedBytes: row["dropped_bytes"], outputPruned: row["output_pruned"], configDigest: row["config_digest"],
            reason: row["reason"], usage: usage(row), edit: edit(row), terminal: terminal(row),
            stdinBytes: row["stdin_bytes"], runId: row["run_id"])
    }

    /// The `usage_source` and figure columns of a row, nil when no source was recorded.
    static func usage(_ row: Row) -> ResourceUsage? {
        guard let source = row["usage_source"] as String? else { return nil }
        return ResourceUsage(
            cpuUserUsec: row["cpu_user_usec"], cpuSystemUsec: row["cpu_system_usec"],
            memoryPeakBytes: row["memory_peak_bytes"], tasksPeak: row["tasks_peak"], ioReadBytes: row["io_read_bytes"],
            ioWriteBytes: row["io_write_bytes"], source: source)
    }

    /// A terminal execution's window at the start; nil for pipes.
    static func terminal(_ row: Row) -> TerminalWindow? {
        guard let rows = row["terminal_rows"] as Int64?, let cols = row["terminal_cols"] as Int64? else { return nil }
        return TerminalWindow(rows: Int(rows), cols: Int(cols))
    }

    /// The edit an edit record describes; nil for a command.
    static func edit(_ row: Row) -> EditSummary? {
        guard let path = row["edit_path"] as String?, let before = row["edit_sha256_before"] as String?,
            let after = row["edit_sha256_after"] as String?
        else { return nil }
        return EditSummary(path: path, sha256Before: before, sha256After: after)
    }
}
