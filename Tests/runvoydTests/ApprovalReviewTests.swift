import Foundation
import Glibc
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Security review of the approvals (docs/REVIEW-appr.md): proofs of concept that FAIL on the branch `appr` as
/// reviewed, and pass once the finding is fixed. They reuse `ApprovalServiceTests.Fixture` (root requests; daemon,
/// bin, sys and sync approve; the spawner always fails and counts its calls).
struct ApprovalReviewTests {
    typealias Fixture = ApprovalServiceTests.Fixture

    /// `prod` as the fixture's, with `break_glass` for administrators and a long audit write timeout.
    static func config(_ fixture: Fixture, count: Int = 2) throws -> DaemonConfig {
        try ConfigLoader.parse(
            yaml: """
                state_directory: \(fixture.directory)/state
                audit: {fail_closed: true, write_timeout: 10m}
                secrets: {runtime_directory: \(fixture.directory)/run}
                roles:
                  developer: {users: ["*"]}
                executors:
                  prod:
                    default: true
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: ["*"]}
                    approval: {count: \(count), approvers: {users: [daemon, bin, sys, sync]}, expires: 10m}
                    break_glass: {roles: [admin]}
                    commands: any
                """, file: "review.yaml")
    }

    /// F2. The gate writes the request (pending, answerable) before its `approval_requested` record. A daemon
    /// that stops in between (the journal stalled, then a restart, a crash, an OOM kill) leaves a request that the
    /// next daemon keeps pending: it is approved and runs, and the audit trail never said it was asked for. "No
    /// record, no request" holds only while the daemon that made the request lives.
    @Test func aRequestWhoseDaemonStoppedBeforeItWasAuditedNeverRuns() async throws {
        let fixture = try Fixture()
        let config = try Self.config(fixture)
        // The first daemon's journal stops reading: its queue is full, records wait (10 minutes here).
        var filled = false
        while !filled {
            do {
                try await fixture.journal.send([("MESSAGE", "fill")], timeout: .milliseconds(50))
            } catch {
                filled = true
            }
        }
        let first = fixture.manager()
        let asking = Task {
            try? await fixture.request(["echo", "never-audited"], first, config)
        }
        // The request is in the database, its approval_requested record still waits for the journal ...
        try await ApprovalServiceTests.Waiter.until {
            ((try? fixture.store.approvals(states: [.pending])) ?? []).count == 1
        }
        let id = try #require(try fixture.store.approvals(states: [.pending]).first?.id)
        // ... when that daemon stops. The next one, with a journal that works, recovers what it left.
        let journald = try JournalTests.FakeJournald()
        let journal = Journal(socketPath: journald.path)
        let second = ExecutionManager(
            group: MultiThreadedEventLoopGroup.singleton, logger: fixture.logger, store: fixture.store,
            secrets: fixture.secrets, refusals: RefusalThrottle(logger: fixture.logger), spawner: fixture.spawner,
            journal: journal
        ) { _ in }
        await second.approvals.recover(config: config)
        let record = try #require(try fixture.store.approval(id))
        for name in ["daemon", "bin"] {
            let caller = Fixture.user(name)
            _ = try? await second.approvals.change(id, caller: caller, config: config, audited: true) {
                _, eligible in
                .approve(
                    uid: caller.uid, user: name, digest: record.digest, eligible: eligible, comment: nil,
                    atMs: WallClock.milliseconds())
            }
        }
        try await ApprovalServiceTests.Waiter.until {
            let state = (try? fixture.store.approval(id))?.state
            return state != .pending && state != .approved
        }
        journal.drain(timeout: .seconds(10))
        let records = journald.receiveAll()
        #expect(!records.contains { $0.contains("RUNVOY_EVENT=approval_requested") })
        #expect(
            try fixture.store.approval(id)?.state != .fulfilled,
            "a request no approval_requested record was ever written for was approved and launched")
        #expect(fixture.spawner.calls == 0, "it reached the spawner")
        // Let the first daemon's stalled record through, so that its task ends.
        _ = fixture.journald.receiveAll()
        _ = await asking.value
    }

    /// F3. A break-glass run whose PRIORITY 2 record cannot be written is refused (good), but what the gate wrote
    /// first stays: a `break_glass` record listed for review of a run that never happened, and an execution row
    /// `awaiting_approval` for ever (retention never removes one; `cancel` says it cancelled it and changes
    /// nothing). The withdrawal the gate tries applies only to pending requests.
    @Test func aBreakGlassRunThatCouldNotBeAuditedLeavesNothingBehind() async throws {
        let fixture = try Fixture()
        let config = try Self.config(fixture)
        let manager = ExecutionManager(
            group: MultiThreadedEventLoopGroup.singleton, logger: fixture.logger, store: fixture.store,
            secrets: fixture.secrets, refusals: RefusalThrottle(logger: fixture.logger), spawner: fixture.spawner,
            journal: Journal(socketPath: "/nonexistent/runvoy-journal.sock")
        ) { _ in }
        var params = ExecParams(argv: ["echo", "glass"])
        params.breakGlass = true
        params.reason = "fire"
        let plan = try ExecPlan.make(params, requestID: nil, caller: Fixture.root, config: config)
        await #expect(throws: RunvoyError.self) {
            try await manager.approvals.gate(params, plan, executions: manager)
        }
        #expect(fixture.spawner.calls == 0)
        let left = try fixture.store.approvals(states: [])
        #expect(
            !left.contains { $0.state == .breakGlass },
            "listed for review as a break-glass run, though it never ran: \(left.map(\.state))")
        for record in left {
            #expect(
                try fixture.store.get(record.id)?.status != .awaitingApproval,
                "its execution row awaits approval for ever")
        }
    }
}
