import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Second security review of approvals (docs/REVIEW-appr2.md): proofs of concept, in process with
/// `ApprovalServiceTests.Fixture`, that FAIL on main as reviewed (922d646).
struct ApprovalReview2Tests {
    typealias Fixture = ApprovalServiceTests.Fixture
    typealias Waiter = ApprovalServiceTests.Waiter

    /// Sends that never return until released: a connection whose client stopped reading (the daemon's
    /// `ConnectionSink.send` suspends on a full outbound writer until the client reads or the connection ends).
    final class Blocker: @unchecked Sendable {
        private let lock = NSLock()
        private var waiting: [CheckedContinuation<Void, Never>] = []
        private var released = false
        private var calls = 0

        /// Returns for the first `free` calls, then blocks until `release`.
        func send(free: Int) async {
            let blocks = lock.withLock { () -> Bool in
                calls += 1
                return calls > free && !released
            }
            guard blocks else { return }
            await withCheckedContinuation { continuation in
                let now = lock.withLock { () -> Bool in
                    if released { return true }
                    waiting.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }

        var count: Int { lock.withLock { calls } }

        func release() {
            let all = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
                released = true
                defer { waiting = [] }
                return waiting
            }
            for continuation in all { continuation.resume() }
        }
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.withLock { value } }
        func set() { lock.withLock { value = true } }
    }

    /// F2 (review 2). The digest binds whether the command reads its requester's standard input ("stdin: pipe"),
    /// but approvers are never shown it: `ApprovalInfo` (and the summary kept for it) has no such field. An
    /// approver asked to approve `sh` (or `tee /etc/…`, `psql`, `python3`) sees exactly the same request whether it
    /// reads nothing or whatever program its requester types or pipes in after the approval.
    @Test func approversAreShownThatACommandReadsItsRequestersInput() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 1)
        let manager = fixture.manager()
        let piped = try await fixture.request(["sh"], manager, config, stdin: true)
        let closed = try await fixture.request(["sh"], manager, config)
        #expect(piped.digest != closed.digest, "the digest tells them apart")
        let approver = Fixture.user("daemon")
        func shown(_ record: ApprovalRecord) throws -> NSDictionary {
            let info = ApprovalsHandler.info(record, caller: approver, config: config).bounded(.single)
            let json = ExecutionStore.json(info)
            var object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            for key in ["id", "digest", "created_at_ms", "expires_at_ms"] { object[key] = nil }
            return object as NSDictionary
        }
        #expect(
            try shown(piped) != shown(closed),
            "an approver is shown the same request whether or not it will read its requester's input")
        #expect(ApprovalsHandler.info(piped, caller: approver, config: config).stdin)
        #expect(!ApprovalsHandler.info(closed, caller: approver, config: config).stdin)
    }

    /// F3 (review 2). Every change of a request is told to its watchers and followers (`Approvals.tell`) before
    /// the change's caller is answered and before an approved request starts (`room.end`), one send after the
    /// other, each awaited. A follower (`logs -f ID`, its requester or a view_all holder) whose connection stops
    /// taking writes (it reads nothing while a large `logs` of another execution fills the same connection)
    /// holds up every approver's `approve` (no reply) and the launch of the approved request for as long as it
    /// likes: the requester then picks when an approval given now is spent.
    @Test func aFollowerThatStopsReadingHoldsUpNeitherTheApproverNorTheLaunch() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 1)
        let manager = fixture.manager()
        let record = try await fixture.request(["echo", "held"], manager, config)
        let blocker = Blocker()
        defer { blocker.release() }
        // The follower takes its first event (the request as it stands), then its connection is full.
        let follower = Task {
            await manager.approvals.follow(record.id, requestID: nil, hangup: Hangup()) { _ in
                await blocker.send(free: 1)
            }
        }
        try await Waiter.until { blocker.count >= 1 }
        let answered = Flag()
        let approving = Task {
            defer { answered.set() }
            _ = try? await fixture.approve(record, by: "daemon", manager, config)
        }
        var held: String?
        do {
            try await Waiter.until { answered.isSet }
            try await Waiter.until { fixture.spawner.calls == 1 }
        } catch {
            held = "approver answered: \(answered.isSet), launched: \(fixture.spawner.calls)"
        }
        #expect(held == nil, "a follower that reads nothing held up the approval: \(held ?? "")")
        blocker.release()
        await approving.value
        follower.cancel()
        await follower.value
    }

    // MARK: - Fixes

    /// `prod` as `Fixture.config` writes it, with its approvers and break-glass list given.
    static func config(
        _ fixture: Fixture, count: Int = 1, approvers: String = "daemon, bin, sys, sync", breakGlass: String = "root"
    ) throws -> DaemonConfig {
        try ConfigLoader.parse(
            yaml: """
                state_directory: \(fixture.directory)/state
                audit: {fail_closed: true, write_timeout: 2s}
                secrets: {runtime_directory: \(fixture.directory)/run}
                roles:
                  developer: {users: ["*"]}
                executors:
                  prod:
                    default: true
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: ["*"]}
                    approval: {count: \(count), approvers: {users: [\(approvers)]}, expires: 10m}
                    break_glass: {users: [\(breakGlass)]}
                    commands: any
                """, file: "approvals.yaml")
    }

    /// F1 (review 2), the check an immediate start and a start at the turn of the queue share
    /// (`Approvals.launchRefusal`): the policy in force may ask for no more approvals and name no other approvers
    /// than the request was approved with, and break-glass must still admit a break-glass run's requester.
    @Test func theStartComparesThePolicyInForceWithTheOneApproved() async throws {
        let fixture = try Fixture()
        let config = try Self.config(fixture)
        let manager = fixture.manager()
        let record = try await fixture.request(["echo", "f1"], manager, config)
        func refusal(_ record: ApprovalRecord, _ config: DaemonConfig) throws -> String? {
            let plan = try ExecPlan.make(
                ExecParams(argv: ["echo", "f1"]), requestID: nil, caller: Fixture.root, config: config)
            return Approvals.launchRefusal(record, plan)
        }
        #expect(try refusal(record, config) == nil)
        let more = try refusal(record, Self.config(fixture, count: 2))
        #expect(more?.contains("asks for 2 approvals now, 1 when it was approved") == true, "\(more ?? "nil")")
        let narrowed = try refusal(record, Self.config(fixture, approvers: "daemon"))
        #expect(narrowed?.contains("its approvers are users daemon now") == true, "\(narrowed ?? "nil")")
        var glass = record
        glass.kind = "break_glass"
        glass.state = .breakGlass
        #expect(try refusal(glass, config) == nil)
        let taken = try refusal(glass, Self.config(fixture, breakGlass: "daemon"))
        #expect(taken?.contains("no longer admits user root") == true, "\(taken ?? "nil")")
    }

    /// F1 (review 2): an approved request's approval is spent at its turn in the queue, not when it enters it, so
    /// one that waited in the queue when the daemon stopped is still approved at the next start, with its row
    /// ended by `HistoryRecovery`: it is withdrawn, never started.
    @Test func anApprovedRequestThatWaitedInTheQueueWhenTheDaemonStoppedIsWithdrawn() async throws {
        let fixture = try Fixture()
        let config = try Self.config(fixture)
        let before = fixture.manager()
        let record = try await fixture.request(["echo", "queued"], before, config)
        // Its client takes the ticket (the daemon would otherwise start it itself).
        let waiter = Waiter()
        let waiting = ApprovalServiceTests.wait(record, before, config, waiter)
        try await Waiter.until { waiter.isWaiting }
        _ = try await fixture.approve(record, by: "daemon", before, config)
        _ = try await waiting.value.get()
        // What the queue and the previous daemon's end left: its row queued, then cancelled at the start.
        #expect(try fixture.store.startAwaiting(record.id, as: .queued))
        try fixture.store.finish(record.id, .notStarted(reason: "the daemon stopped"))
        let after = fixture.manager()
        await after.approvals.recover(config: config)
        let ended = try #require(try fixture.store.approval(record.id))
        #expect(ended.state == .withdrawn)
        #expect(ended.decision?.contains("before it started") == true, "\(ended.decision ?? "nil")")
        #expect(fixture.spawner.calls == 0)
    }

    /// F3 (review 2), fixed: what a watcher or follower is told waits in a mailbox of one (the latest state), sent
    /// by a task of its own: posting never waits, however stuck the client, and an older state is dropped.
    @Test func aMailboxKeepsOnlyTheLatestStateAndNeverHoldsUpWhoPosts() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 1)
        let manager = fixture.manager()
        var record = try await fixture.request(["echo", "mailbox"], manager, config)
        let blocker = Blocker()
        defer { blocker.release() }
        final class Sent: @unchecked Sendable {
            private let lock = NSLock()
            private var versions: [Int] = []
            func add(_ version: Int) { lock.withLock { versions.append(version) } }
            var all: [Int] { lock.withLock { versions } }
        }
        let sent = Sent()
        let mailbox = ApprovalMailbox { record in
            await blocker.send(free: 0)
            sent.add(record.version)
        }
        let first = record.version
        mailbox.post(record)
        try await Waiter.until { blocker.count == 1 }
        // Stuck on the first: these return at once; only the last waits to be sent.
        for _ in 0..<100 {
            record.version += 1
            mailbox.post(record)
        }
        var stale = record
        stale.version = first
        mailbox.post(stale)
        blocker.release()
        await mailbox.finish()
        #expect(sent.all == [first, first + 100], "\(sent.all)")
        mailbox.post(record)
        await mailbox.finish()
        #expect(sent.all.count == 2, "nothing is taken after finish")
    }

    /// L1 and L2 (review 2), fixed: `cancel` of a break-glass run whose row still awaits its start abandons it
    /// (it never starts), audited with `approval_decided` (`CAUSE=abandoned`); `cancel` of a request whose command
    /// started is `invalid_state` saying so, never "cancelled".
    @Test func cancelWithdrawsOnlyWhatItCanAndSaysWhatStarted() async throws {
        let fixture = try Fixture()
        let config = try Self.config(fixture)
        let manager = fixture.manager()
        var params = ExecParams(argv: ["echo", "glass"])
        params.breakGlass = true
        params.reason = "fire"
        let plan = try ExecPlan.make(params, requestID: nil, caller: Fixture.root, config: config)
        let glass = try #require(try await manager.approvals.gate(params, plan, executions: manager))
        #expect(glass.state == .breakGlass)
        try await manager.approvals.cancel(glass.id, by: "root", config: config)
        #expect(try fixture.store.approval(glass.id)?.state == .withdrawn)
        #expect(try fixture.store.get(glass.id)?.status == .cancelled)
        await #expect(throws: RunvoyError.self) {
            try await manager.approvals.fulfil(ApprovalTicket(record: glass), plan, .start)
        }

        // An approved request whose command started (its row `running`): not withdrawn, and `cancel` says so.
        let record = try await fixture.request(["echo", "started"], manager, config)
        let waiter = Waiter()
        let waiting = ApprovalServiceTests.wait(record, manager, config, waiter)
        try await Waiter.until { waiter.isWaiting }
        _ = try await fixture.approve(record, by: "daemon", manager, config)
        let ticket = try await waiting.value.get()
        let started = try ExecPlan.make(
            ExecParams(argv: ["echo", "started"]), requestID: nil, caller: Fixture.root, config: config)
        try await manager.approvals.fulfil(ticket, started, .start)
        do throws(RunvoyError) {
            try await manager.approvals.cancel(record.id, by: "root", config: config)
            Issue.record("cancel said it withdrew a request whose command started")
        } catch {
            #expect(error.code == .invalidState && error.message.contains("has started (running)"), "\(error)")
        }
        #expect(try fixture.store.approval(record.id)?.state == .fulfilled)
        let decided = fixture.records("approval_decided").filter { $0["RUNVOY_APPROVAL_ID"] == glass.id }
        #expect(decided.map { $0["RUNVOY_CAUSE"] } == ["abandoned"], "\(decided)")
        #expect(decided.first?["RUNVOY_STATE"] == "withdrawn")
        #expect(fixture.spawner.calls == 0)
    }

    /// `cancel` of a request already denied says so and what its execution is; nothing changes.
    @Test func cancelOfADeniedRequestSaysItIsDeniedAlready() async throws {
        let fixture = try Fixture()
        let config = try Self.config(fixture)
        let manager = fixture.manager()
        let record = try await fixture.request(["echo", "denied"], manager, config)
        let denier = Fixture.user("daemon")
        _ = try await manager.approvals.change(record.id, caller: denier, config: config, audited: true) {
            _, eligible in
            .deny(uid: denier.uid, user: "daemon", eligible: eligible, comment: "no", atMs: WallClock.milliseconds())
        }
        let status = try #require(try fixture.store.get(record.id)?.status.rawValue)
        do throws(RunvoyError) {
            try await manager.approvals.cancel(record.id, by: "root", config: config)
            Issue.record("cancel said it withdrew a denied request")
        } catch {
            #expect(error.code == .invalidState)
            #expect(
                error.message == "request \(record.id) is denied already (execution \(status)); nothing to withdraw")
        }
        #expect(try fixture.store.approval(record.id)?.state == .denied)
        #expect(fixture.spawner.calls == 0)
    }
}
