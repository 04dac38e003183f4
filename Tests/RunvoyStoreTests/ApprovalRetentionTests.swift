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

    /// A listing reads heads first, then only the rows asked for, without `params`, within a byte bound (the
    /// first always).
    @Test func aListingReadsHeadsThenBoundedRowsWithoutParameters() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        var ids: [String] = []
        for n in 1...3 {
            var record = ApprovalStoreTests.record(ExecutionStoreTests.id(n), requester: UInt32(1000 + n))
            record.summary = #"{"argv":[""# + String(repeating: "y", count: 1000) + #""]}"#
            #expect(try store.insertApproval(record, execution: nil, maxPending: 10, maxPerUser: 10))
            ids.append(record.id)
        }
        #expect(try store.approvalHeads(states: [.pending], requesterUid: 1002, limit: 10).map(\.id) == [ids[1]])
        let heads = try store.approvalHeads(states: [], limit: 10)
        #expect(heads.map(\.id) == ids.reversed())
        #expect(heads.first?.approvers == ApproverList(users: ["bob", "carol"]))
        let listed = try store.listedApprovals(heads.map(\.id) + ["missing"], maxBytes: 2500)
        #expect(listed.map(\.id) == Array(ids.reversed().prefix(2)))
        #expect(listed.allSatisfy { $0.params.isEmpty && $0.reason == "INC-1" })
    }

    /// A listing's next page (`before`): the requests after the cursor's creation time and id, ties broken by id.
    @Test func headsAfterACursorAreTheNextPage() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let ids = (1...3).map { ExecutionStoreTests.id($0) }
        for id in ids {
            #expect(
                try store.insertApproval(ApprovalStoreTests.record(id), execution: nil, maxPending: 10, maxPerUser: 10))
        }
        #expect(try store.approvalCreatedAt(ids[2]) == 10)
        #expect(try store.approvalCreatedAt("missing") == nil)
        let next = try store.approvalHeads(states: [.pending], before: (10, ids[2]), limit: 10)
        #expect(next.map(\.id) == [ids[1], ids[0]])
        #expect(try store.approvalHeads(states: [], before: (10, ids[0]), limit: 10).isEmpty)
        #expect(try store.approvalHeads(states: [], before: (11, ids[0]), limit: 10).map(\.id) == ids.reversed())
    }
}
