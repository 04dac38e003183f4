import Foundation
import Glibc
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// The lower findings of the review of approvals (docs/REVIEW-appr.md, L1-L3), in process with
/// `ApprovalServiceTests.Fixture`.
struct ApprovalFixTests {
    typealias Fixture = ApprovalServiceTests.Fixture
    typealias Waiter = ApprovalServiceTests.Waiter

    /// L1. An approved request whose start fails before its ticket is spent (here an invalid `wait_timeout_ms`,
    /// only checked then; `rate_limited` or a daemon shutting down alike) is withdrawn with the reason: left
    /// approved, the next daemon would launch what its requester was told did not run.
    @Test func anApprovedRequestThatCouldNotStartIsWithdrawn() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 1)
        let manager = fixture.manager()
        let record = try await fixture.request(["echo", "unspent"], manager, config)
        let waiter = Waiter()
        let waiting = ApprovalServiceTests.wait(record, manager, config, waiter)
        try await Waiter.until { waiter.isWaiting }
        _ = try await fixture.approve(record, by: "daemon", manager, config)
        let ticket = try await waiting.value.get()
        var params = ExecParams(argv: ["echo", "unspent"])
        params.waitTimeoutMs = 0
        do throws(RunvoyError) {
            _ = try await manager.start(
                params, requestID: nil, caller: Fixture.root, config: config, sink: nil, approval: ticket
            ) { _ in }
            Issue.record("it started with wait_timeout_ms 0")
        } catch {
            #expect(error.code == .invalidArgument, "\(error)")
        }
        let after = try #require(try fixture.store.approval(record.id))
        #expect(after.state == .withdrawn, "left \(after.state) for the next daemon to launch")
        #expect(after.decision?.contains("wait_timeout_ms") == true, "\(after.decision ?? "")")
        #expect(try fixture.store.get(record.id)?.status == .cancelled)
        #expect(fixture.spawner.calls == 0)
    }

    /// L1 for break-glass: a run that could not start is no run to review; its record is withdrawn and its row
    /// cancelled, not left `break_glass` and `awaiting_approval`.
    @Test func aBreakGlassRunThatCouldNotStartIsNotListedForReview() async throws {
        let fixture = try Fixture()
        let config = try ApprovalReviewTests.config(fixture)
        let manager = fixture.manager()
        let (asked, record) = try await Self.breakGlass(manager, config)
        var params = asked
        #expect(record.state == .breakGlass && record.recorded)
        params.waitTimeoutMs = -1
        await #expect(throws: RunvoyError.self) {
            try await manager.start(
                params, requestID: nil, caller: Fixture.root, config: config, sink: nil,
                approval: ApprovalTicket(record: record)
            ) { _ in }
        }
        #expect(try fixture.store.approval(record.id)?.state == .withdrawn)
        #expect(try fixture.store.get(record.id)?.status == .cancelled)
    }

    /// Root breaks the glass on `prod`: the request's parameters and its record.
    static func breakGlass(
        _ manager: ExecutionManager, _ config: DaemonConfig
    ) async throws -> (ExecParams, ApprovalRecord) {
        var params = ExecParams(argv: ["echo", "glass"])
        params.breakGlass = true
        params.reason = "fire"
        let plan = try ExecPlan.make(params, requestID: nil, caller: Fixture.root, config: config)
        return (params, try #require(try await manager.approvals.gate(params, plan, executions: manager)))
    }

    /// A break-glass run the previous daemon recorded but never started is no run to review: the next one ends it
    /// (its row cancelled); one that ran stays listed.
    @Test func aBreakGlassRunADaemonNeverStartedEndsAtTheNextStart() async throws {
        let fixture = try Fixture()
        let config = try ApprovalReviewTests.config(fixture)
        let (_, record) = try await Self.breakGlass(fixture.manager(), config)
        await fixture.manager().approvals.recover(config: config)
        #expect(try fixture.store.approval(record.id)?.state == .withdrawn)
        #expect(try fixture.store.get(record.id)?.status == .cancelled)
    }

    /// L2. An expiry timer that fires before the deadline (the wall clock was set back) finds the request not yet
    /// due: it is set again, and the request expires at its deadline instead of waiting for someone to act.
    @Test func anExpiryTimerThatFiresEarlyIsSetAgain() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 1, expires: "1s")
        let manager = fixture.manager()
        let record = try await fixture.request(["echo", "early"], manager, config)
        manager.approvals.cancelTimer(record.id)
        await manager.approvals.expire(record.id, config: config, atMs: record.createdAtMs)
        #expect(try fixture.store.approval(record.id)?.state == .pending)
        try await Waiter.until { (try? fixture.store.approval(record.id))?.state == .expired }
    }

    /// L3. A break-glass run is reviewed with a comment saying what was checked: an empty (or blank) one is
    /// refused and the run stays listed for review.
    @Test func aBreakGlassReviewNeedsAComment() async throws {
        let fixture = try Fixture()
        let config = try ApprovalReviewTests.config(fixture)
        let manager = fixture.manager()
        let (_, record) = try await Self.breakGlass(manager, config)
        let reviewer = Fixture.user("daemon")
        func review(_ comment: String) async throws(RunvoyError) -> ApprovalRecord {
            try await manager.approvals.change(record.id, caller: reviewer, config: config, audited: true) {
                _, eligible in
                .review(
                    uid: reviewer.uid, user: "daemon", eligible: eligible, comment: comment,
                    atMs: WallClock.milliseconds())
            }
        }
        for blank in ["", "   "] {
            do throws(RunvoyError) {
                _ = try await review(blank)
                Issue.record("reviewed with the comment '\(blank)'")
            } catch {
                #expect(error.code == .invalidArgument, "\(error)")
            }
        }
        #expect(try fixture.store.approval(record.id)?.state == .breakGlass)
        #expect(try await review("checked the restart").state == .reviewed)
    }

    /// F2 in the machine: a request whose audit record is not written yet cannot be answered or reviewed.
    @Test func anUnrecordedRequestCannotBeAnswered() {
        var record = ApprovalRecord(
            id: "r", kind: "exec", state: .pending, requesterUid: 1000, requesterUser: "alice", executor: "prod",
            digest: "d", params: "{}", summary: "{}", reason: nil, required: 1, approvers: ApproverList(),
            needsClient: false, createdAtMs: 0, expiresAtMs: 1000, configDigest: "c", recorded: false)
        let approve = ApprovalMachine.apply(
            .approve(uid: 1, user: "bob", digest: "d", eligible: true, comment: nil, atMs: 1), to: record)
        #expect(approve.record.state == .pending)
        #expect(throws: RunvoyError.self) { try approve.result.get() }
        let deny = ApprovalMachine.apply(.deny(uid: 1, user: "bob", eligible: true, comment: "no", atMs: 1), to: record)
        #expect(throws: RunvoyError.self) { try deny.result.get() }
        record.state = .breakGlass
        let review = ApprovalMachine.apply(
            .review(uid: 1, user: "bob", eligible: true, comment: "ok", atMs: 1), to: record)
        #expect(throws: RunvoyError.self) { try review.result.get() }
    }
}
