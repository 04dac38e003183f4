import Foundation
import Glibc
import Logging
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// The approvals service in process, against a real state database and a journal the test reads: no way around
/// the gate into `ExecutionManager.start`, answers at once recorded as they were stored, waiting clients told how
/// their wait ended, a ticket spent under a policy that asks for more, and the requests a daemon left at
/// restart. Root (uid 0) requests; the system accounts daemon, bin, sys and sync approve. The spawner always
/// fails, so nothing runs: a launch that reaches it is counted.
struct ApprovalServiceTests {
    final class Fixture: @unchecked Sendable {
        let directory: String
        let store: ExecutionStore
        let secrets: SecretStore
        let journald: JournalTests.FakeJournald
        let journal: Journal
        let spawner = ExecLaunchTests.FailingSpawner(SpawnError(.fork, errno: EAGAIN))
        let logger = Logger(label: "ApprovalServiceTests")
        private let lock = NSLock()
        private var collected: [[String: String]] = []

        init() throws {
            var template = Array("/tmp/runvoy-approvals-XXXXXX".utf8CString)
            directory = String(cString: mkdtemp(&template)!)
            store = try ExecutionStore(stateDirectory: directory + "/state")
            secrets = try SecretStore(store: store, key: try #require(MasterKey.parse(Array(repeating: 7, count: 32))))
            journald = try JournalTests.FakeJournald()
            journal = Journal(socketPath: journald.path)
        }

        deinit { FileSystem.removeTree(directory) }

        /// The configuration: `prod` needs `count` approvals of daemon, bin, sys or sync, within `expires`.
        func config(count: Int = 2, expires: String = "10m", bounds: String = "{}") throws -> DaemonConfig {
            try ConfigLoader.parse(
                yaml: """
                    state_directory: \(directory)/state
                    audit: {fail_closed: true, write_timeout: 30s}
                    approvals: \(bounds)
                    secrets: {runtime_directory: \(directory)/run}
                    roles:
                      developer: {users: ["*"]}
                    executors:
                      prod:
                        default: true
                        run_as: {user: nobody}
                        environment: {PATH: /usr/bin:/bin}
                        allow: {users: ["*"]}
                        approval: {count: \(count), approvers: {users: [daemon, bin, sys, sync]}, expires: \(expires)}
                        commands: any
                    """, file: "approvals.yaml")
        }

        func manager() -> ExecutionManager {
            ExecutionManager(
                group: MultiThreadedEventLoopGroup.singleton, logger: logger, store: store, secrets: secrets,
                refusals: RefusalThrottle(logger: logger), spawner: spawner, journal: journal
            ) { _ in }
        }

        static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
        static func user(_ name: String) -> Caller { Caller.lookup(userName: name)! }

        /// A request of root's through the gate, as `exec` makes it.
        func request(
            _ argv: [String], _ manager: ExecutionManager, _ config: DaemonConfig, stdin: Bool = false
        ) async throws -> ApprovalRecord {
            var params = ExecParams(argv: argv)
            params.stdin = stdin
            let plan = try ExecPlan.make(params, requestID: nil, caller: Self.root, config: config)
            return try #require(try await manager.approvals.gate(params, plan, executions: manager))
        }

        func approve(
            _ record: ApprovalRecord, by name: String, _ manager: ExecutionManager, _ config: DaemonConfig,
            digest: String? = nil
        ) async throws(RunvoyError) -> ApprovalRecord {
            let caller = Self.user(name)
            return try await manager.approvals.change(record.id, caller: caller, config: config, audited: true) {
                _, eligible in
                .approve(
                    uid: caller.uid, user: name, digest: digest ?? record.digest, eligible: eligible, comment: nil,
                    atMs: WallClock.milliseconds())
            }
        }

        /// Empties the journal's small queue into what `records` returns, so that records to come fit in it.
        func collect() { _ = records(drain: false) }

        /// Every record written (`drain`: the journal is drained first, and closed, so only at the end of a test),
        /// as fields by name.
        func records(_ event: String? = nil, drain: Bool = true) -> [[String: String]] {
            if drain { journal.drain(timeout: .seconds(10)) }
            let new = journald.receiveAll().map { datagram in
                var fields: [String: String] = [:]
                for line in datagram.split(separator: "\n") {
                    guard let equals = line.firstIndex(of: "=") else { continue }
                    fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
                }
                return fields
            }
            let all = lock.withLock {
                collected += new
                return collected
            }
            return all.filter { event == nil || $0["RUNVOY_EVENT"] == event }
        }
    }

    /// A client waiting for approval: the events it is sent, and a hang-up the test makes.
    final class Waiter: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [ApprovalEvent] = []
        private var hangups: [@Sendable () -> Void] = []

        var client: ExecutionManager.QueueClient {
            ExecutionManager.QueueClient(
                send: { _ in },
                onHangup: { callback in
                    self.lock.withLock { self.hangups.append(callback) }
                    return {}
                }, isGone: { false },
                sendApproval: { event in self.lock.withLock { self.events.append(event) } })
        }

        var received: [ApprovalEvent] { lock.withLock { events } }
        var isWaiting: Bool { lock.withLock { !hangups.isEmpty } }

        func hangUp() {
            for callback in lock.withLock({ hangups }) { callback() }
        }

        /// Waits (polling, bounded by `seconds`) until `condition` holds.
        static func until(seconds: Int = 60, _ condition: () -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while !condition() {
                guard ContinuousClock.now < deadline else { throw CancellationError() }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Waits for `record`'s decision as `exec` does, in a task.
    static func wait(
        _ record: ApprovalRecord, _ manager: ExecutionManager, _ config: DaemonConfig, _ waiter: Waiter
    ) -> Task<Result<ApprovalTicket, RunvoyError>, Never> {
        Task {
            do throws(RunvoyError) {
                return .success(
                    try await manager.approvals.awaitDecision(
                        record, requestID: .number(1), client: waiter.client, config: config))
            } catch {
                return .failure(error)
            }
        }
    }

    // MARK: - No way around the gate

    @Test func startRefusesAPlanThatNeedsApprovalWithoutTheTicketOfThatVeryPlan() async throws {
        let fixture = try Fixture()
        let config = try fixture.config()
        let manager = fixture.manager()
        func start(_ argv: [String], _ ticket: ApprovalTicket?) async -> RunvoyError? {
            do {
                _ = try await manager.start(
                    ExecParams(argv: argv), requestID: nil, caller: Fixture.root, config: config, sink: nil,
                    approval: ticket
                ) { _ in }
                return nil
            } catch {
                return error
            }
        }
        let none = await start(["echo", "a"], nil)
        #expect(
            none?.code == .permissionDenied && none?.message.contains("approval") == true, "\(String(describing: none))"
        )
        // A ticket for another command does not cover this one.
        let other = try await fixture.request(["echo", "b"], manager, config)
        let wrong = await start(["echo", "a"], ApprovalTicket(record: other))
        #expect(wrong?.message.contains("not what was approved") == true, "\(String(describing: wrong))")
        // A ticket forged for exactly this command, whose request nobody approved, does not start it either.
        let unapproved = await start(["echo", "b"], ApprovalTicket(record: other))
        #expect(unapproved?.code == .invalidState, "\(String(describing: unapproved))")
        #expect(fixture.spawner.calls == 0)
        #expect(try fixture.store.approval(other.id)?.state == .pending)
        #expect(fixture.records("decision").contains { $0["RUNVOY_DECISION"] == "deny" })
    }

    /// No record, no request: when `approval_requested` cannot be written, the request is withdrawn and the
    /// caller refused.
    @Test func aRequestWhoseRecordCannotBeWrittenIsWithdrawn() async throws {
        let fixture = try Fixture()
        let config = try fixture.config()
        let manager = ExecutionManager(
            group: MultiThreadedEventLoopGroup.singleton, logger: fixture.logger, store: fixture.store,
            secrets: fixture.secrets, refusals: RefusalThrottle(logger: fixture.logger), spawner: fixture.spawner,
            journal: Journal(socketPath: "/nonexistent/runvoy-journal.sock")
        ) { _ in }
        let plan = try ExecPlan.make(
            ExecParams(argv: ["echo", "x"]), requestID: nil, caller: Fixture.root, config: config)
        await #expect(throws: RunvoyError.self) {
            try await manager.approvals.gate(ExecParams(argv: ["echo", "x"]), plan, executions: manager)
        }
        let left = try fixture.store.approvals(states: [])
        #expect(left.map(\.state) == [.withdrawn], "\(left)")
        #expect(left.first?.decision?.contains("could not be audited") == true)
    }

    /// An approved request whose stored parameters cannot be read (a damaged database) is withdrawn, never run.
    @Test func anApprovedRequestWithUnreadableParametersIsWithdrawn() async throws {
        let fixture = try Fixture()
        let config = try fixture.config()
        let manager = fixture.manager()
        var record = try await fixture.request(["echo", "damaged"], manager, config)
        record.id = ExecutionID.make(milliseconds: UInt64(WallClock.milliseconds()) + 7)
        record.params = "{"
        record.state = .approved
        #expect(try fixture.store.insertApproval(record, execution: nil, maxPending: 10, maxPerUser: 10))
        await manager.startApproved(ApprovalTicket(record: record), config: config)
        #expect(try fixture.store.approval(record.id)?.state == .withdrawn)
        #expect(fixture.spawner.calls == 0)
    }

    /// A request whose deadline passed with no timer to see it (one the daemon left) is found expired by the next
    /// event, here a withdrawal: it ends `expired`, and is told so.
    @Test func aRequestFoundDueByAnotherEventEndsExpired() async throws {
        let fixture = try Fixture()
        let config = try fixture.config()
        let manager = fixture.manager()
        var due = try await fixture.request(["echo", "due"], manager, config)
        due.id = ExecutionID.make(milliseconds: UInt64(WallClock.milliseconds()) + 9)
        due.expiresAtMs = WallClock.milliseconds() - 1
        #expect(try fixture.store.insertApproval(due, execution: nil, maxPending: 10, maxPerUser: 10))
        await manager.approvals.withdraw(due.id, reason: "withdrawn by root", config: config)
        #expect(try fixture.store.approval(due.id)?.state == .expired)
        #expect(fixture.records("approval_decided").contains { $0["RUNVOY_APPROVAL_ID"] == due.id })
    }

    /// The room's orderings that depend on timing in the daemon: a turn that comes before its watcher waits, an
    /// approval with two watchers (one starts it, the other is told), an observer let go before it waits.
    @Test func theRoomKeepsATurnThatComesBeforeItsWatcherWaits() async throws {
        let room = Mutex(ApprovalRoom())
        let record = ApprovalRecord(
            id: "01aaaaaaaaaaaaaaaaaaaaaaaa", kind: "exec", state: .approved, requesterUid: 0, requesterUser: "root",
            executor: "prod", digest: "sha256:x", params: "{}", summary: "{}", reason: nil, required: 1,
            approvers: ApproverList(users: ["bin"]), needsClient: false, createdAtMs: 1, expiresAtMs: 2,
            configDigest: "")
        let first = room.withLock { $0.watch(record.id) { _ in } }
        let second = room.withLock { $0.watch(record.id) { _ in } }
        #expect(room.withLock { $0.end(record.id, .approved(ApprovalTicket(record: record))) })
        func turn(_ token: Int) async -> ApprovalRoom.Turn {
            await withCheckedContinuation { continuation in
                if let turn = room.withLock({ $0.await(record.id, token, continuation) }) {
                    continuation.resume(returning: turn)
                }
            }
        }
        guard case .approved(let ticket) = await turn(first) else { throw CancellationError() }
        #expect(ticket.id == record.id)
        guard case .ended(let told) = await turn(second) else { throw CancellationError() }
        #expect(told.message.contains("started by another client"))
        #expect(room.withLock { $0.watchers.isEmpty })
        // Nobody watches now: the daemon starts an approval itself.
        #expect(!room.withLock { $0.end(record.id, .approved(ApprovalTicket(record: record))) })
        let observer = room.withLock { $0.observe(record.id) { _ in } }
        room.withLock { $0.settle(record.id) }
        await withCheckedContinuation { continuation in
            if !room.withLock({ $0.awaitSettled(record.id, observer, continuation) }) { continuation.resume() }
        }
        #expect(room.withLock { $0.observers.isEmpty })
    }

    // MARK: - Answers

    /// Two approvers at once used to be recorded both as APPROVALS=1 (the second retried after its write lost,
    /// and was recorded again): every record now says what was stored, once per person.
    @Test func approversAnsweringAtOnceAreEachRecordedOnceAsStored() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 3)
        let manager = fixture.manager()
        let record = try await fixture.request(["echo", "race"], manager, config)
        let waiter = Waiter()
        let waiting = Self.wait(record, manager, config, waiter)
        try await Waiter.until { waiter.isWaiting }
        let outcomes = await withTaskGroup(of: RunvoyError?.self) { group in
            for name in ["daemon", "bin", "sys", "sync"] {
                group.addTask {
                    do throws(RunvoyError) {
                        _ = try await fixture.approve(record, by: name, manager, config)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == nil }.count == 3)
        #expect(outcomes.compactMap { $0 }.map(\.code) == [.invalidState])
        let ticket = try await waiting.value.get()
        #expect(ticket.approvedBy.count == 3)
        let answered = fixture.records("approval_answered")
        #expect(answered.compactMap { $0["RUNVOY_APPROVALS"] }.sorted() == ["1", "2", "3"], "\(answered)")
        #expect(Set(answered.compactMap { $0["RUNVOY_APPROVER_USER"] }).count == 3)
        let stored = try #require(try fixture.store.approval(record.id))
        #expect(stored.state == .approved && stored.approvals == 3)
        #expect(waiter.received.map(\.approvals).last == 3)
    }

    @Test func aStaleDigestAndAChangedCommandAreNotCoveredByAnEarlierApproval() async throws {
        let fixture = try Fixture()
        let config = try fixture.config()
        let manager = fixture.manager()
        let first = try await fixture.request(["echo", "one"], manager, config)
        _ = try await fixture.approve(first, by: "daemon", manager, config)
        let second = try await fixture.request(["echo", "two"], manager, config)
        #expect(second.id != first.id && second.digest != first.digest)
        do throws(RunvoyError) {
            _ = try await fixture.approve(second, by: "bin", manager, config, digest: first.digest)
            Issue.record("an approval of what was shown for another request counted")
        } catch {
            #expect(error.code == .conflict && error.message.contains("not the one you saw"))
        }
        #expect(try fixture.store.approval(second.id)?.approvals == 0)
        #expect(try fixture.store.approval(first.id)?.approvals == 1)
        #expect(fixture.records("approval_answered").count == 1)
    }

    @Test func aWaitingClientIsToldOfADenialAndOfItsExpiry() async throws {
        let fixture = try Fixture()
        let config = try fixture.config()
        let quick = try fixture.config(expires: "1s")
        let manager = fixture.manager()
        let denied = try await fixture.request(["echo", "no"], manager, config)
        let waiter = Waiter()
        let waiting = Self.wait(denied, manager, config, waiter)
        try await Waiter.until { waiter.isWaiting }
        let caller = Fixture.user("sys")
        _ = try await manager.approvals.change(denied.id, caller: caller, config: config, audited: true) {
            _, eligible in
            .deny(uid: caller.uid, user: "sys", eligible: eligible, comment: "not now", atMs: WallClock.milliseconds())
        }
        guard case .failure(let refusal) = await waiting.value else { throw CancellationError() }
        #expect(refusal.code == .approvalDenied && refusal.message.contains("not now"), "\(refusal)")
        #expect(try fixture.store.get(denied.id)?.status == .cancelled)

        let expiring = try await fixture.request(["echo", "late"], manager, quick)
        let late = Waiter()
        guard case .failure(let expiry) = await Self.wait(expiring, manager, quick, late).value else {
            throw CancellationError()
        }
        #expect(expiry.code == .approvalExpired, "\(expiry)")
        // Pending when it began to wait; on a loaded machine the second may have passed before it did, and then
        // it is told at once (as below).
        #expect(late.received.first.map { [.pending, .expired].contains($0.state) } ?? true, "\(late.received)")
        #expect(try fixture.store.approval(expiring.id)?.state == .expired)
        let decided = fixture.records("approval_decided")
        #expect(decided.contains { $0["RUNVOY_APPROVAL_ID"] == expiring.id && $0["RUNVOY_STATE"] == "expired" })
        // One that ended before its client watched is told at once.
        guard case .failure(let already) = await Self.wait(expiring, manager, quick, Waiter()).value else {
            throw CancellationError()
        }
        #expect(already.code == .approvalExpired)
    }

    @Test func aClientThatHangsUpWithdrawsOnlyARequestThatNeedsIt() async throws {
        let fixture = try Fixture()
        let config = try fixture.config()
        let manager = fixture.manager()
        let piped = try await fixture.request(["cat"], manager, config, stdin: true)
        #expect(piped.needsClient)
        let plain = try await fixture.request(["echo", "stays"], manager, config)
        for record in [piped, plain] {
            let waiter = Waiter()
            let waiting = Self.wait(record, manager, config, waiter)
            try await Waiter.until { waiter.isWaiting }
            waiter.hangUp()
            guard case .failure(let gone) = await waiting.value else { throw CancellationError() }
            #expect(gone.code == .cancelled)
        }
        try await Waiter.until { (try? fixture.store.approval(piped.id)?.state) == .withdrawn }
        #expect(try fixture.store.get(piped.id)?.status == .cancelled)
        #expect(try fixture.store.approval(plain.id)?.state == .pending)
        // Its requester withdraws the other (`cancel ID`); a withdrawn request cannot be approved.
        await manager.approvals.withdraw(plain.id, reason: "withdrawn by root", config: config)
        #expect(try fixture.store.approval(plain.id)?.state == .withdrawn)
        await #expect(throws: RunvoyError.self) { try await fixture.approve(plain, by: "bin", manager, config) }
    }

    /// `logs -f` of a waiting request: its events, and it is let go when the command starts (or fails to), when
    /// the request ends, when its client goes, or at once for a request that no longer waits.
    @Test func aFollowerHearsEachChangeAndIsLetGoWhenItStartsEndsOrItsClientGoes() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 1)
        let manager = fixture.manager()
        final class Heard: @unchecked Sendable {
            let lock = NSLock()
            var events: [ApprovalEvent] = []
            func add(_ event: ApprovalEvent) { lock.withLock { events.append(event) } }
            var count: Int { lock.withLock { events.count } }
        }
        func follow(_ id: String, _ heard: Heard, _ hangup: Hangup = Hangup()) -> Task<Void, Never> {
            Task { await manager.approvals.follow(id, requestID: .number(3), hangup: hangup) { heard.add($0) } }
        }
        let started = try await fixture.request(["echo", "followed"], manager, config)
        let heard = Heard()
        let following = follow(started.id, heard)
        try await Waiter.until { heard.count == 1 }
        _ = try await fixture.approve(started, by: "daemon", manager, config)
        await following.value
        #expect(heard.events.map(\.state) == [.pending, .approved])
        #expect(fixture.spawner.calls == 1, "it was let go once the command was launched")
        // At once for a request that no longer waits.
        let after = Heard()
        await follow(started.id, after).value
        #expect(after.count == 0)
        // A request that ends; a client that goes.
        let denied = try await fixture.request(["echo", "denied"], manager, config)
        let deniedHeard = Heard()
        let deniedFollow = follow(denied.id, deniedHeard)
        try await Waiter.until { deniedHeard.count == 1 }
        await manager.approvals.withdraw(denied.id, reason: "withdrawn by root", config: config)
        await deniedFollow.value
        #expect(deniedHeard.events.last?.state == .withdrawn)
        let left = try await fixture.request(["echo", "left"], manager, config)
        let hangup = Hangup()
        let leftHeard = Heard()
        let leaving = follow(left.id, leftHeard, hangup)
        try await Waiter.until { leftHeard.count == 1 }
        hangup.fire()
        await leaving.value
        #expect(try fixture.store.approval(left.id)?.state == .pending)
    }

    // MARK: - Spending the ticket

    /// An approval is spent under the configuration in force: one that asks for more approvals now invalidates
    /// it, and it never runs.
    @Test func aTicketIsInvalidatedWhenThePolicyNowAsksForMore() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 1)
        let manager = fixture.manager()
        let record = try await fixture.request(["echo", "policy"], manager, config)
        let waiter = Waiter()
        let waiting = Self.wait(record, manager, config, waiter)
        try await Waiter.until { waiter.isWaiting }
        _ = try await fixture.approve(record, by: "daemon", manager, config)
        let ticket = try await waiting.value.get()
        let stricter = try fixture.config(count: 2)
        do throws(RunvoyError) {
            _ = try await manager.start(
                ExecParams(argv: ["echo", "policy"]), requestID: nil, caller: Fixture.root, config: stricter,
                sink: nil, approval: ticket
            ) { _ in }
            Issue.record("an approval of one started under a policy asking for two")
        } catch {
            #expect(error.code == .cancelled && error.message.contains("policy changed"), "\(error)")
        }
        #expect(try fixture.store.approval(record.id)?.state == .invalidated)
        #expect(try fixture.store.get(record.id)?.status == .cancelled)
        #expect(fixture.spawner.calls == 0)
    }

    // MARK: - Restart

    /// What a daemon left: a due request expires, one that needed its client is withdrawn, another waits on, and
    /// an approved one (stopped between the last approval and the start) starts.
    @Test func aRestartExpiresWithdrawsKeepsAndStartsWhatThePreviousDaemonLeft() async throws {
        let fixture = try Fixture()
        let config = try fixture.config(count: 1)
        let before = fixture.manager()
        let approved = try await fixture.request(["echo", "approved"], before, config)
        let waiter = Waiter()
        let waiting = Self.wait(approved, before, config, waiter)
        try await Waiter.until { waiter.isWaiting }
        _ = try await fixture.approve(approved, by: "bin", before, config)
        _ = try await waiting.value.get()
        let kept = try await fixture.request(["echo", "kept"], before, config)
        let piped = try await fixture.request(["cat"], before, config, stdin: true)
        // One whose deadline passed while no daemon ran.
        var due = kept
        due.id = ExecutionID.make(milliseconds: UInt64(WallClock.milliseconds()) + 1)
        due.expiresAtMs = WallClock.milliseconds() - 1
        #expect(try fixture.store.insertApproval(due, execution: nil, maxPending: 10, maxPerUser: 10))

        fixture.collect()
        let after = fixture.manager()
        await after.approvals.recover(config: config)
        fixture.collect()
        #expect(try fixture.store.approval(due.id)?.state == .expired)
        #expect(try fixture.store.approval(piped.id)?.state == .withdrawn)
        #expect(try fixture.store.approval(kept.id)?.state == .pending)
        #expect(try fixture.store.approval(approved.id)?.state == .fulfilled)
        #expect(fixture.spawner.calls == 1, "the approved request was launched")
        // The one that waits on is still answered, and starts.
        _ = try await fixture.approve(kept, by: "sys", after, config)
        try await Waiter.until { fixture.spawner.calls == 2 }
        #expect(try fixture.store.approval(kept.id)?.state == .fulfilled)
    }
}
