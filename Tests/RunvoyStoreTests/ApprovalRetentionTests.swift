import GRDB
import RunvoyKit
import Testing

@testable import RunvoyStore

/// Retention and requests for approval (review of approvals, F4): a request counts towards
/// `history.max_total_bytes` with its execution and goes with it; a request of no execution goes once it ended
/// and is old.
struct ApprovalRetentionTests {
    @Test func aRequestCountsTowardsTheSizeLimitAndGoesWithItsExecution() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let id = ExecutionStoreTests.id(1)
        var old = ApprovalStoreTests.record(id)
        old.params = #"{"argv":[""# + String(repeating: "x", count: 100_000) + #""]}"#
        let row = ExecutionStoreTests.info(id, status: .awaitingApproval, createdAtMs: 10)
        #expect(try store.insertApproval(old, execution: row, maxPending: 10, maxPerUser: 10))
        var denied = old
        denied.state = .denied
        denied.decidedAtMs = 20
        denied.decision = "denied by bob: no"
        #expect(try store.updateApproval(denied, from: old))
        // Nothing is older than the age limit; the request's 100 KB are over the size limit.
        let report = try store.prune(olderThanMs: nil, maxTotalBytes: 50_000)
        #expect(report.deleted == [id])
        #expect(report.freedBytes > 100_000)
        #expect(try store.approval(id) == nil)
        let answers = try store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM approval_answers") }
        #expect(answers == 0)
    }

    @Test func aRequestOfNoExecutionGoesOnceItEndedAndIsOld() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        var ended = ApprovalStoreTests.record(ExecutionStoreTests.id(1))
        ended.kind = "grant"
        ended.state = .withdrawn
        var pending = ApprovalStoreTests.record(ExecutionStoreTests.id(2))
        pending.kind = "grant"
        for record in [ended, pending] {
            #expect(try store.insertApproval(record, execution: nil, maxPending: 10, maxPerUser: 10))
        }
        _ = try store.prune(olderThanMs: Int64.max, maxTotalBytes: nil)
        #expect(try store.approval(ended.id) == nil)
        #expect(try store.approval(pending.id) != nil, "a pending request is never pruned")
    }
}
