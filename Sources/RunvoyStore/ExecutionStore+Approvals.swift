import GRDB
import RunvoyKit

/// A request for approval as the state database keeps it (`approval_requests` and its `approval_answers`).
public struct ApprovalRecord: Sendable, Equatable {
    public var id: String
    /// `exec` or `break_glass` (`grant`: a request for a temporary grant; `playbook`: a playbook's run).
    public var kind: String
    public var state: ApprovalState
    public var requesterUid: UInt32
    public var requesterUser: String
    public var executor: String?
    public var digest: String
    /// The request's parameters as JSON, to plan it again when it is approved.
    public var params: String
    /// What approvers are shown, as JSON (`ApprovalSummary`).
    public var summary: String
    public var reason: String?
    public var required: Int
    public var approvers: ApproverList
    /// Whether it needs its client (a terminal or standard input): withdrawn when the client goes.
    public var needsClient: Bool
    public var createdAtMs: Int64
    public var expiresAtMs: Int64
    public var decidedAtMs: Int64?
    public var decidedByUid: UInt32?
    /// Why it ended ("denied by bob: not now"), once it has.
    public var decision: String?
    public var configDigest: String
    /// Whether its audit record (`approval_requested`, `break_glass`) was written: until then nobody may act on
    /// it, and one the daemon stopped before it was ends unrun at the next start.
    public var recorded: Bool
    /// Bumped by every write, so that a write based on an older read changes nothing (`update`).
    public var version: Int = 0
    public var answers: [ApprovalAnswer] = []

    public init(
        id: String, kind: String, state: ApprovalState, requesterUid: UInt32, requesterUser: String,
        executor: String?, digest: String, params: String, summary: String, reason: String?, required: Int,
        approvers: ApproverList, needsClient: Bool, createdAtMs: Int64, expiresAtMs: Int64, configDigest: String,
        recorded: Bool = true
    ) {
        self.id = id
        self.kind = kind
        self.state = state
        self.requesterUid = requesterUid
        self.requesterUser = requesterUser
        self.executor = executor
        self.digest = digest
        self.params = params
        self.summary = summary
        self.reason = reason
        self.required = required
        self.approvers = approvers
        self.needsClient = needsClient
        self.createdAtMs = createdAtMs
        self.expiresAtMs = expiresAtMs
        self.configDigest = configDigest
        self.recorded = recorded
    }

    /// How many distinct people approved.
    public var approvals: Int { answers.filter { $0.answer == .approve }.count }
}

extension ExecutionStore {
    /// `v6-approvals`: requests for approval and their answers. One answer per uid and request (the primary key),
    /// and never from the requester (the trigger, behind the daemon's own check).
    static func registerApprovals(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v6-approvals") { db in
            try db.execute(
                sql: """
                    CREATE TABLE approval_requests (
                        id TEXT PRIMARY KEY NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('exec', 'break_glass', 'grant')),
                        state TEXT NOT NULL,
                        requester_uid INTEGER NOT NULL,
                        requester_user TEXT NOT NULL,
                        executor TEXT,
                        digest TEXT NOT NULL,
                        params TEXT NOT NULL,
                        summary TEXT NOT NULL,
                        reason TEXT,
                        required INTEGER NOT NULL,
                        approvers TEXT NOT NULL,
                        needs_client INTEGER NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        decided_at INTEGER,
                        decided_by_uid INTEGER,
                        decision_comment TEXT,
                        config_digest TEXT NOT NULL,
                        version INTEGER NOT NULL DEFAULT 0,
                        recorded INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX approval_requests_by_state ON approval_requests(state, expires_at);
                    CREATE INDEX approval_requests_by_requester ON approval_requests(requester_uid, created_at);
                    CREATE TABLE approval_answers (
                        request_id TEXT NOT NULL REFERENCES approval_requests(id) ON DELETE CASCADE,
                        approver_uid INTEGER NOT NULL,
                        approver_user TEXT NOT NULL,
                        answer TEXT NOT NULL CHECK (answer IN ('approve', 'deny', 'review')),
                        digest TEXT NOT NULL,
                        comment TEXT,
                        answered_at INTEGER NOT NULL,
                        PRIMARY KEY (request_id, approver_uid)
                    );
                    CREATE TRIGGER approval_answers_not_self BEFORE INSERT ON approval_answers
                    WHEN NEW.approver_uid = (SELECT requester_uid FROM approval_requests WHERE id = NEW.request_id)
                    BEGIN SELECT RAISE(ABORT, 'self-approval'); END;
                    """)
        }
    }

    /// `v9-playbook-approvals`: requests for approval of kind `playbook` (a playbook's run). SQLite cannot change
    /// a CHECK constraint: the table is rebuilt, as SQLite documents (foreign keys are off during a migration).
    static func registerPlaybookApprovals(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v9-playbook-approvals") { db in
            try db.execute(
                sql: """
                    DROP TRIGGER approval_answers_not_self;
                    CREATE TABLE approval_requests_v9 (
                        id TEXT PRIMARY KEY NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('exec', 'break_glass', 'grant', 'playbook')),
                        state TEXT NOT NULL,
                        requester_uid INTEGER NOT NULL,
                        requester_user TEXT NOT NULL,
                        executor TEXT,
                        digest TEXT NOT NULL,
                        params TEXT NOT NULL,
                        summary TEXT NOT NULL,
                        reason TEXT,
                        required INTEGER NOT NULL,
                        approvers TEXT NOT NULL,
                        needs_client INTEGER NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        decided_at INTEGER,
                        decided_by_uid INTEGER,
                        decision_comment TEXT,
                        config_digest TEXT NOT NULL,
                        version INTEGER NOT NULL DEFAULT 0,
                        recorded INTEGER NOT NULL DEFAULT 0
                    );
                    INSERT INTO approval_requests_v9 SELECT * FROM approval_requests;
                    DROP TABLE approval_requests;
                    ALTER TABLE approval_requests_v9 RENAME TO approval_requests;
                    CREATE INDEX approval_requests_by_state ON approval_requests(state, expires_at);
                    CREATE INDEX approval_requests_by_requester ON approval_requests(requester_uid, created_at);
                    CREATE TRIGGER approval_answers_not_self BEFORE INSERT ON approval_answers
                    WHEN NEW.approver_uid = (SELECT requester_uid FROM approval_requests WHERE id = NEW.request_id)
                    BEGIN SELECT RAISE(ABORT, 'self-approval'); END;
                    """)
        }
    }

    /// Records a new request, with the history row of its execution (`awaiting_approval`; none for a grant), in
    /// one transaction; refused (`StoreError`) beyond `maxPending` requests pending, or `maxPerUser` of the
    /// requester's. Returns false when it was refused for those bounds.
    public func insertApproval(
        _ record: ApprovalRecord, execution: ExecutionInfo?, maxPending: Int, maxPerUser: Int
    ) throws(StoreError) -> Bool {
        try write { db in
            if record.state == .pending {
                let pending =
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM approval_requests WHERE state = 'pending'") ?? 0
                let mine =
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM approval_requests WHERE state = 'pending' AND requester_uid = ?",
                        arguments: [Int64(record.requesterUid)]) ?? 0
                guard pending < maxPending, mine < maxPerUser else { return false }
            }
            try db.execute(
                sql: """
                    INSERT INTO approval_requests (id, kind, state, requester_uid, requester_user, executor, digest,
                        params, summary, reason, required, approvers, needs_client, created_at, expires_at,
                        decided_at, decided_by_uid, decision_comment, config_digest, version, recorded)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
                    """,
                arguments: [
                    record.id, record.kind, record.state.rawValue, Int64(record.requesterUid), record.requesterUser,
                    record.executor, record.digest, record.params, record.summary, record.reason, record.required,
                    Self.json(record.approvers), record.needsClient, record.createdAtMs, record.expiresAtMs,
                    record.decidedAtMs, record.decidedByUid.map { Int64($0) }, record.decision, record.configDigest,
                    record.recorded,
                ])
            if let execution { try Self.insertExecution(db, execution) }
            return true
        }
    }

    /// One request by id, with its answers.
    public func approval(_ id: String) throws(StoreError) -> ApprovalRecord? {
        try read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM approval_requests WHERE id = ?", arguments: [id])
            else { return nil }
            return try Self.approvalRecord(db, row)
        }
    }

    /// Requests in `states` (all when empty), newest first; only `requesterUid`'s when given.
    public func approvals(
        states: [ApprovalState], requesterUid: UInt32? = nil, limit: Int = 500
    ) throws(StoreError) -> [ApprovalRecord] {
        let (filter, final) = Self.approvalFilter(states: states, requesterUid: requesterUid)
        let sql = "SELECT * FROM approval_requests \(filter) ORDER BY created_at DESC, id DESC LIMIT \(max(1, limit))"
        return try read { db in
            try Row.fetchAll(db, sql: sql, arguments: final).map { try Self.approvalRecord(db, $0) }
        }
    }

    /// Writes `record` as an event left it, from the `version` it was read at: its state and decision, the
    /// answers it gained, and (when it ended without running) its execution's history row, `cancelled` with the
    /// decision's reason; when it was `fulfilled`, the row becomes `started` (`running` or `queued`). One
    /// transaction; false (nothing written) when the record changed since it was read.
    public func updateApproval(
        _ record: ApprovalRecord, from old: ApprovalRecord, started: ExecutionStatus? = nil
    ) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(
                sql: """
                    UPDATE approval_requests SET state = ?, decided_at = ?, decided_by_uid = ?, decision_comment = ?,
                        version = version + 1
                    WHERE id = ? AND version = ? AND state = ?
                    """,
                arguments: [
                    record.state.rawValue, record.decidedAtMs, record.decidedByUid.map { Int64($0) }, record.decision,
                    record.id, old.version, old.state.rawValue,
                ])
            guard db.changesCount == 1 else { return false }
            for answer in record.answers.dropFirst(old.answers.count) {
                try db.execute(
                    sql: """
                        INSERT INTO approval_answers (request_id, approver_uid, approver_user, answer, digest, comment,
                            answered_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        record.id, Int64(answer.uid), answer.user, answer.answer.rawValue, answer.digest,
                        answer.comment, answer.atMs,
                    ])
            }
            try Self.moveExecution(db, record, started: started)
            return true
        }
    }

    /// The execution row of an exec request follows its request: `started` when it was fulfilled, `cancelled`
    /// with the decision when it ended without running (a break-glass run's too when it was invalidated).
    private static func moveExecution(_ db: Database, _ record: ApprovalRecord, started: ExecutionStatus?) throws {
        guard record.kind == "exec" || (record.kind == "break_glass" && record.state == .invalidated) else { return }
        if record.state == .fulfilled, let started {
            try db.execute(
                sql: "UPDATE executions SET status = ? WHERE id = ? AND status = 'awaiting_approval'",
                arguments: [started.rawValue, record.id])
            if db.changesCount != 1 { throw DatabaseError(message: "execution \(record.id) does not await approval") }
        } else if record.state.isFinal && record.state != .fulfilled {
            try db.execute(
                sql: """
                    UPDATE executions SET status = 'cancelled', finished_at = ?, reason = ?
                    WHERE id = ? AND status = 'awaiting_approval'
                    """,
                arguments: [record.decidedAtMs ?? record.createdAtMs, record.decision, record.id])
        }
    }

    /// Marks request `id` recorded (its audit record was written), while it is still pending or a break-glass
    /// run; false when it ended (or was marked) before.
    public func markApprovalRecorded(_ id: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(
                sql: """
                    UPDATE approval_requests SET recorded = 1, version = version + 1
                    WHERE id = ? AND recorded = 0 AND state IN ('pending', 'break_glass')
                    """,
                arguments: [id])
            return db.changesCount == 1
        }
    }

    /// Ends request `id` `withdrawn` with `reason`, and its execution's `awaiting_approval` row `cancelled` with
    /// it, in one transaction, if its command never started (the row still awaits), or, for a request for a grant
    /// (which has no row), if it is still pending or approved; false otherwise.
    public func abandonApproval(_ id: String, reason: String, atMs: Int64) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(
                sql: """
                    UPDATE approval_requests SET state = 'withdrawn', decided_at = ?, decision_comment = ?,
                        version = version + 1
                    WHERE id = ? AND state IN ('pending', 'approved', 'break_glass')
                        AND (kind = 'grant' OR EXISTS (SELECT 1 FROM executions e WHERE e.id = approval_requests.id
                            AND e.status = 'awaiting_approval'))
                    """,
                arguments: [atMs, reason, id])
            guard db.changesCount == 1 else { return false }
            try db.execute(
                sql: """
                    UPDATE executions SET status = 'cancelled', finished_at = ?, reason = ?
                    WHERE id = ? AND status = 'awaiting_approval'
                    """,
                arguments: [atMs, reason, id])
            return true
        }
    }

    /// The WHERE clause (empty for no condition) and its arguments for requests in `states` (all when empty),
    /// only `requesterUid`'s when given.
    static func approvalFilter(
        states: [ApprovalState], requesterUid: UInt32?
    ) -> (String, StatementArguments) {
        var clauses: [String] = []
        var arguments = StatementArguments()
        if !states.isEmpty {
            clauses.append("state IN (" + states.map { _ in "?" }.joined(separator: ",") + ")")
            _ = arguments.append(contentsOf: StatementArguments(states.map(\.rawValue)))
        }
        if let requesterUid {
            clauses.append("requester_uid = ?")
            _ = arguments.append(contentsOf: [Int64(requesterUid)])
        }
        return (clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND "), arguments)
    }

    /// How many requests are pending: everyone's, and `uid`'s.
    public func pendingApprovals(uid: UInt32) throws(StoreError) -> (all: Int, mine: Int) {
        try read { db in
            let all = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM approval_requests WHERE state = 'pending'") ?? 0
            let mine =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM approval_requests WHERE state = 'pending' AND requester_uid = ?",
                    arguments: [Int64(uid)]) ?? 0
            return (all, mine)
        }
    }

    static func approvalRecord(_ db: Database, _ row: Row) throws -> ApprovalRecord {
        var record = ApprovalRecord(
            id: row["id"], kind: row["kind"], state: ApprovalState(rawValue: row["state"]) ?? .invalidated,
            requesterUid: UInt32(truncatingIfNeeded: row["requester_uid"] as Int64),
            requesterUser: row["requester_user"], executor: row["executor"], digest: row["digest"],
            params: row["params"], summary: row["summary"], reason: row["reason"], required: row["required"],
            approvers: decode(ApproverList.self, row["approvers"]) ?? ApproverList(),
            needsClient: row["needs_client"], createdAtMs: row["created_at"], expiresAtMs: row["expires_at"],
            configDigest: row["config_digest"])
        record.decidedAtMs = row["decided_at"]
        record.decidedByUid = (row["decided_by_uid"] as Int64?).map { UInt32(truncatingIfNeeded: $0) }
        record.decision = row["decision_comment"]
        record.version = row["version"]
        record.recorded = row["recorded"]
        record.answers = try Row.fetchAll(
            db, sql: "SELECT * FROM approval_answers WHERE request_id = ? ORDER BY answered_at, approver_uid",
            arguments: [record.id]
        ).map { answer in
            ApprovalAnswer(
                uid: UInt32(truncatingIfNeeded: answer["approver_uid"] as Int64), user: answer["approver_user"],
                answer: ApprovalAnswer.Kind(rawValue: answer["answer"]) ?? .deny, digest: answer["digest"],
                comment: answer["comment"], atMs: answer["answered_at"])
        }
        return record
    }

    /// `value` as JSON text.
    public static func json<T: Encodable>(_ value: T) -> String {
        (try? Frame.payload(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    /// `text` read as JSON of `type`, nil when it is not.
    public static func decode<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
        var text = text
        return text.withUTF8 { bytes in try? Frame.decode(type, from: UnsafeRawBufferPointer(bytes)) }
    }
}
