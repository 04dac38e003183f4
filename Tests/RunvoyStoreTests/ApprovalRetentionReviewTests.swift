import GRDB
import RunvoyKit
import Testing

@testable import RunvoyStore

/// Security review of the approvals (docs/REVIEW-appr.md), F4: proofs of concept that FAIL on the branch `appr`
/// as reviewed.
struct ApprovalRetentionReviewTests {
    /// Retention removes an execution's record and output, but never its request for approval: `params` (argv,
    /// the caller's environment values) and `summary` (argv again) stay for ever, uncounted in
    /// `history.max_total_bytes`. A developer who asks and withdraws in a loop (10 pending at a time is the only
    /// bound) grows the state database without limit, and what retention promised to forget is kept.
    @Test func retentionForgetsTheRequestOfAnExecutionItRemoves() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let id = ExecutionStoreTests.id(1)
        var old = ApprovalStoreTests.record(id)
        old.params = #"{"argv":["deploy"],"env":{"TOKEN_HINT":"kept-for-ever"}}"#
        let row = ExecutionStoreTests.info(id, status: .awaitingApproval, createdAtMs: 10)
        #expect(try store.insertApproval(old, execution: row, maxPending: 10, maxPerUser: 10))
        var withdrawn = old
        withdrawn.state = .withdrawn
        withdrawn.decidedAtMs = 20
        withdrawn.decision = "withdrawn by alice"
        #expect(try store.updateApproval(withdrawn, from: old))
        #expect(try store.get(id)?.status == .cancelled)
        let report = try store.prune(olderThanMs: 1_000, maxTotalBytes: nil)
        #expect(report.deleted == [id])
        #expect(try store.get(id) == nil)
        #expect(
            try store.approval(id) == nil,
            "the request (argv, environment values) outlives the execution retention removed")
    }
}
