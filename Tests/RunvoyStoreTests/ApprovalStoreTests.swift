import GRDB
import RunvoyKit
import Testing

@testable import RunvoyStore

/// The `v6-approvals` migration from a real v5 database (one written by the migrations as they were), and the
/// request table's rules: bounds, one answer per person, never the requester's, conditional writes.
struct ApprovalStoreTests {
    static func record(_ id: String, requester: UInt32 = 1000, state: ApprovalState = .pending) -> ApprovalRecord {
        ApprovalRecord(
            id: id, kind: "exec", state: state, requesterUid: requester, requesterUser: "alice", executor: "prod",
            digest: "sha256:" + String(repeating: "a", count: 64), params: #"{"argv":["echo"]}"#, summary: "{}",
            reason: "INC-1", required: 2, approvers: ApproverList(users: ["bob", "carol"]), needsClient: false,
            createdAtMs: 10, expiresAtMs: 1_000_000, configDigest: "abc")
    }

    @Test func aVersion5HistoryIsMigratedAndItsExecutionsAreKept() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let queue = try DatabaseQueue(path: directory.path + "/history.sqlite")
            try ExecutionStore.migrator.migrate(queue, upTo: "v5-edits-terminal")
            try queue.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO executions (id, status, caller_uid, caller_user, caller_pid, executor, run_as, argv,
                            cwd, env_keys, created_at, config_digest, terminal_rows, terminal_cols)
                        VALUES (?, 'succeeded', 1000, 'alice', 42, 'default', 'nobody:nogroup', '["true"]', '/', '[]',
                            5, 'abc', 24, 80)
                        """, arguments: [ExecutionStoreTests.id(1)])
                #expect(try !db.tableExists("approval_requests"))
            }
        }
        let store = try ExecutionStore(stateDirectory: directory.path)
        #expect(ExecutionStore.schemaVersions.contains("v6-approvals"))
        let old = try #require(try store.get(ExecutionStoreTests.id(1)))
        #expect(old.status == .succeeded && old.callerUser == "alice")
        // The new tables work on the migrated database: a request with its awaiting row, within its bounds.
        let id = ExecutionStoreTests.id(2)
        let row = ExecutionStoreTests.info(id, status: .awaitingApproval, createdAtMs: 10)
        #expect(try store.insertApproval(Self.record(id), execution: row, maxPending: 1, maxPerUser: 1))
        #expect(try store.get(id)?.status == .awaitingApproval)
        let beyond = ExecutionStoreTests.id(3)
        #expect(try !store.insertApproval(Self.record(beyond), execution: nil, maxPending: 1, maxPerUser: 5))
        #expect(try store.approval(beyond) == nil)
        #expect(try store.pendingApprovals(uid: 1000) == (1, 1))
    }

    @Test func answersAreOncePerPersonNeverTheRequestersAndWrittenOnlyOverWhatWasRead() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let id = ExecutionStoreTests.id(1)
        let old = Self.record(id)
        #expect(try store.insertApproval(old, execution: nil, maxPending: 10, maxPerUser: 10))
        var answered = old
        answered.answers.append(
            .init(uid: 1001, user: "bob", answer: .approve, digest: old.digest, comment: nil, atMs: 11))
        #expect(try store.updateApproval(answered, from: old))
        // A write from the version read before that one changes nothing.
        var stale = old
        stale.answers.append(
            .init(uid: 1002, user: "carol", answer: .approve, digest: old.digest, comment: nil, atMs: 12))
        #expect(try !store.updateApproval(stale, from: old))
        let current = try #require(try store.approval(id))
        #expect(current.approvals == 1 && current.version == 1)
        // The database refuses the requester's own answer and a second answer of one person, whoever writes.
        var own = current
        own.answers.append(
            .init(uid: 1000, user: "alice", answer: .approve, digest: old.digest, comment: nil, atMs: 13))
        #expect(throws: StoreError.self) { try store.updateApproval(own, from: current) }
        var twice = current
        twice.answers.append(.init(uid: 1001, user: "bob", answer: .deny, digest: old.digest, comment: "x", atMs: 13))
        #expect(throws: StoreError.self) { try store.updateApproval(twice, from: current) }
        #expect(try store.approval(id)?.answers.count == 1)
    }
}

extension ApprovalStoreTests {
    @Test func aFulfilmentWhoseExecutionNoLongerAwaitsIsNotWrittenAndEndsKeepTheirDecider() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        func awaiting(_ n: Int) throws -> ApprovalRecord {
            let id = ExecutionStoreTests.id(n)
            let row = ExecutionStoreTests.info(id, status: .awaitingApproval, createdAtMs: 10)
            #expect(try store.insertApproval(Self.record(id), execution: row, maxPending: 10, maxPerUser: 10))
            return Self.record(id)
        }
        // The execution row left `awaiting_approval` meanwhile: the request is not marked fulfilled either.
        let old = try awaiting(1)
        try store.pool.write { db in
            try db.execute(sql: "UPDATE executions SET status = 'cancelled' WHERE id = ?", arguments: [old.id])
        }
        var fulfilled = old
        (fulfilled.state, fulfilled.decidedAtMs, fulfilled.decidedByUid) = (.fulfilled, 12, 1001)
        let error = #expect(throws: StoreError.self) {
            try store.updateApproval(fulfilled, from: old, started: .running)
        }
        #expect(
            error?.code == .database && error?.message.contains("execution \(old.id) does not await approval") == true)
        #expect(try store.approval(old.id)?.state == .pending)

        // An end without a decision time ends the execution row at the request's creation.
        let expiring = try awaiting(2)
        var expired = expiring
        expired.state = .expired
        #expect(try store.updateApproval(expired, from: expiring))
        let row = try #require(try store.get(expiring.id))
        #expect(row.status == .cancelled && row.finishedAtMs == expiring.createdAtMs)

        // A request recorded already decided keeps who decided it.
        var denied = Self.record(ExecutionStoreTests.id(3), state: .denied)
        (denied.decidedAtMs, denied.decidedByUid, denied.decision) = (20, 1002, "not today")
        #expect(try store.insertApproval(denied, execution: nil, maxPending: 10, maxPerUser: 10))
        let read = try #require(try store.approval(denied.id))
        #expect(read.decidedByUid == 1002 && read.decidedAtMs == 20 && read.decision == "not today")
    }
}
