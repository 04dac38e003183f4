import GRDB
import Glibc
import RunvoyKit

/// What a backup and an export read from the history.
extension ExecutionStore {
    /// The state directory the history lives in.
    public var stateDirectory: String { String(outputRoot.dropLast("/output".count)) }

    /// The schema versions this build knows: the identifiers of its migrations, oldest first.
    public static var schemaVersions: [String] { migrator.migrations }

    /// Writes a consistent copy of the database to `path` (a new file) with `VACUUM INTO`, on a connection of
    /// its own: it reads one snapshot (a read transaction), so writers go on meanwhile and the copy holds every
    /// transaction committed before it started and none after.
    public func snapshot(into path: String) throws(StoreError) {
        do {
            var configuration = Configuration()
            configuration.label = "runvoy-backup"
            configuration.busyMode = .timeout(5)
            let queue = try DatabaseQueue(path: databasePath, configuration: configuration)
            try queue.inDatabase { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
            try queue.close()
        } catch {
            throw StoreError(.database, "cannot copy the execution history for a backup: \(error)")
        }
    }

    /// The schema versions (migration identifiers) applied to the database at `path`, oldest first.
    static func appliedSchema(_ db: Database) throws -> [String] {
        try migrator.appliedMigrations(db)
    }

    /// One page of the executions created in `since...until` (milliseconds), oldest first, after `after`
    /// (the `created_at` and id of the last one of the previous page); only those of `ownerUid` when given.
    public func exportPage(
        after: (createdAtMs: Int64, id: String)?, sinceMs: Int64?, untilMs: Int64, ownerUid: UInt32?, limit: Int
    ) throws(StoreError) -> [ExecutionInfo] {
        var clauses = ["created_at <= ?"]
        var arguments: StatementArguments = [untilMs]
        if let sinceMs {
            clauses.append("created_at >= ?")
            _ = arguments.append(contentsOf: [sinceMs])
        }
        if let ownerUid {
            clauses.append("caller_uid = ?")
            _ = arguments.append(contentsOf: [Int64(ownerUid)])
        }
        if let after {
            clauses.append("(created_at > ? OR (created_at = ? AND id > ?))")
            _ = arguments.append(contentsOf: [after.createdAtMs, after.createdAtMs, after.id])
        }
        let sql = """
            SELECT * FROM executions WHERE \(clauses.joined(separator: " AND "))
            ORDER BY created_at, id LIMIT \(max(1, limit))
            """
        let finalArguments = arguments
        return try read { db in try Row.fetchAll(db, sql: sql, arguments: finalArguments).map(Self.info) }
    }
}
