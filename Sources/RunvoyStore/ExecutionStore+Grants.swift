import GRDB
import RunvoyKit

/// A temporary grant as the state database keeps it (`grants`): a role or an executor given to one uid until
/// `expiresAtMs`, unless it ended earlier (`revoked`) or at its time (`expired`).
public struct GrantRow: Sendable, Equatable {
    public var id: String
    public var uid: UInt32
    public var user: String
    /// Exactly one of `role` and `executor` is set.
    public var role: String?
    public var executor: String?
    public var reason: String
    public var grantedByUid: UInt32
    public var grantedByUser: String
    /// The request for approval it was made for, if any.
    public var requestId: String?
    public var createdAtMs: Int64
    public var expiresAtMs: Int64
    public var endedAtMs: Int64?
    /// `revoked` or `expired`, once it ended.
    public var endCause: String?
    public var endedByUid: UInt32?

    public init(
        id: String, uid: UInt32, user: String, role: String?, executor: String?, reason: String,
        grantedByUid: UInt32, grantedByUser: String, requestId: String? = nil, createdAtMs: Int64, expiresAtMs: Int64
    ) {
        self.id = id
        self.uid = uid
        self.user = user
        self.role = role
        self.executor = executor
        self.reason = reason
        self.grantedByUid = grantedByUid
        self.grantedByUser = grantedByUser
        self.requestId = requestId
        self.createdAtMs = createdAtMs
        self.expiresAtMs = expiresAtMs
    }
}

extension ExecutionStore {
    /// `v7-grants`: temporary grants. A grant gives a role or an executor, never both nor neither (the check).
    static func registerGrants(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v7-grants") { db in
            try db.execute(
                sql: """
                    CREATE TABLE grants (
                        id TEXT PRIMARY KEY NOT NULL,
                        uid INTEGER NOT NULL,
                        user TEXT NOT NULL,
                        role TEXT,
                        executor TEXT,
                        reason TEXT NOT NULL,
                        granted_by_uid INTEGER NOT NULL,
                        granted_by_user TEXT NOT NULL,
                        request_id TEXT,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        ended_at INTEGER,
                        end_cause TEXT CHECK (end_cause IN ('revoked', 'expired')),
                        ended_by_uid INTEGER,
                        CHECK ((role IS NULL) != (executor IS NULL)),
                        CHECK (expires_at > created_at)
                    );
                    CREATE INDEX grants_active ON grants(ended_at, expires_at);
                    CREATE UNIQUE INDEX grants_by_request ON grants(request_id) WHERE request_id IS NOT NULL;
                    """)
        }
    }

    /// Records a new grant. A request for approval makes at most one grant (the unique index): a second is
    /// refused (false).
    public func insertGrant(_ grant: GrantRow) throws(StoreError) -> Bool {
        try write { db in
            if let request = grant.requestId,
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM grants WHERE request_id = ?", arguments: [request])
                    ?? 0 > 0
            {
                return false
            }
            try db.execute(
                sql: """
                    INSERT INTO grants (id, uid, user, role, executor, reason, granted_by_uid, granted_by_user,
                        request_id, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    grant.id, Int64(grant.uid), grant.user, grant.role, grant.executor, grant.reason,
                    Int64(grant.grantedByUid), grant.grantedByUser, grant.requestId, grant.createdAtMs,
                    grant.expiresAtMs,
                ])
            return true
        }
    }

    /// One grant by id, ended or not.
    public func grant(_ id: String) throws(StoreError) -> GrantRow? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM grants WHERE id = ?", arguments: [id]).map(Self.grantRow)
        }
    }

    /// The grants that have not ended (some may be due: `expireGrants` ends those), oldest first.
    public func activeGrants() throws(StoreError) -> [GrantRow] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM grants WHERE ended_at IS NULL ORDER BY created_at, id")
                .map(Self.grantRow)
        }
    }

    /// Ends grant `id` early (`revoked` by `byUid`), if it has not ended; returns it as it now stands, or nil
    /// when it had already ended (or never existed).
    public func revokeGrant(_ id: String, byUid: UInt32, atMs now: Int64) throws(StoreError) -> GrantRow? {
        try write { db in
            try db.execute(
                sql: """
                    UPDATE grants SET ended_at = ?, end_cause = 'revoked', ended_by_uid = ?
                    WHERE id = ? AND ended_at IS NULL AND expires_at > ?
                    """, arguments: [now, Int64(byUid), id, now])
            guard db.changesCount == 1 else { return nil }
            return try Row.fetchOne(db, sql: "SELECT * FROM grants WHERE id = ?", arguments: [id]).map(Self.grantRow)
        }
    }

    /// Takes back the revocation of grant `id` (its record could not be written, so it must not count).
    public func reopenGrant(_ id: String) throws(StoreError) {
        try write { db in
            try db.execute(
                sql: """
                    UPDATE grants SET ended_at = NULL, end_cause = NULL, ended_by_uid = NULL
                    WHERE id = ? AND end_cause = 'revoked'
                    """, arguments: [id])
        }
    }

    /// Ends every grant due at `now` (`expired`, at its own expiry time) and returns them; each is ended once.
    public func expireGrants(atMs now: Int64) throws(StoreError) -> [GrantRow] {
        try write { db in
            let due = try Row.fetchAll(
                db, sql: "SELECT * FROM grants WHERE ended_at IS NULL AND expires_at <= ? ORDER BY expires_at, id",
                arguments: [now]
            ).map(Self.grantRow)
            try db.execute(
                sql: """
                    UPDATE grants SET ended_at = expires_at, end_cause = 'expired'
                    WHERE ended_at IS NULL AND expires_at <= ?
                    """, arguments: [now])
            return due.map { row in
                var row = row
                row.endedAtMs = row.expiresAtMs
                row.endCause = "expired"
                return row
            }
        }
    }

    /// Forgets the grants that ended before `endedBefore` (retention: `history.max_age`).
    static func pruneGrants(_ db: Database, endedBefore: Int64) throws {
        try db.execute(sql: "DELETE FROM grants WHERE ended_at IS NOT NULL AND ended_at < ?", arguments: [endedBefore])
    }

    static func grantRow(_ row: Row) -> GrantRow {
        var grant = GrantRow(
            id: row["id"], uid: UInt32(truncatingIfNeeded: row["uid"] as Int64), user: row["user"], role: row["role"],
            executor: row["executor"], reason: row["reason"],
            grantedByUid: UInt32(truncatingIfNeeded: row["granted_by_uid"] as Int64),
            grantedByUser: row["granted_by_user"], requestId: row["request_id"], createdAtMs: row["created_at"],
            expiresAtMs: row["expires_at"])
        grant.endedAtMs = row["ended_at"]
        grant.endCause = row["end_cause"]
        grant.endedByUid = (row["ended_by_uid"] as Int64?).map { UInt32(truncatingIfNeeded: $0) }
        return grant
    }
}
