import Glibc
import Logging
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Review 14 proofs of concept: admission bypasses and defects an attacker can use. Each test FAILS on b80035d.
@Suite struct AdmissionReviewPoCTests {
    typealias Scheduler = AdmissionScheduler<Int>
    typealias Request = Scheduler.Request

    static func request(
        _ id: Int, _ uid: uid_t, _ executor: String, _ locks: [(String, Bool)] = [], concurrency: Int? = nil
    ) -> Request {
        Request(
            id: id, uid: uid, holder: .member, executor: executor, concurrency: concurrency,
            locks: locks.map { .init(name: $0.0, shared: $0.1) })
    }

    /// A developer fills its own share (`max_executions_per_user`) with long commands, then queues one execution
    /// on an executor that needs lock `db` exclusively. That waiter can never start (its owner's share is full),
    /// yet "writers first" makes every other user's shared claim on `db` wait behind it, though `db` is free:
    /// the attacker denies the lock to everyone for as long as its own commands run, without holding it.
    @Test func anExclusiveWaiterBlockedByItsOwnShareStarvesSharedClaimsOnAFreeLock() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 2, perUserWithoutRole: 1)
        let attacker: uid_t = 1000
        let victim: uid_t = 2000
        #expect(scheduler.arrive(Self.request(1, attacker, "shell"), within: limits) == [1])
        #expect(scheduler.arrive(Self.request(2, attacker, "shell"), within: limits) == [2])
        // Waits for its owner's share, not for the lock.
        #expect(scheduler.arrive(Self.request(3, attacker, "migrate", [("db", false)]), within: limits) == [])
        #expect(scheduler.locks["db"] == nil)
        let reader = Self.request(4, victim, "report", [("db", true)])
        let started = scheduler.arrive(reader, within: limits)
        #expect(
            started == [4],
            "a shared claim on the free lock waits behind a waiter that cannot start: \(String(describing: scheduler.blocker(of: reader, within: limits)))"
        )
    }

    /// The same with one long command: the attacker holds lock `y` shared (an executor that declares it shared),
    /// and queues on an executor that needs `db` and `y` exclusively. Its waiter waits for `y` (its own hold);
    /// every other user's shared claim on the free `db` waits behind it.
    @Test func anExclusiveWaiterBlockedByAnotherLockStarvesSharedClaimsOnAFreeLock() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 100, perUserWithoutRole: 1)
        let attacker: uid_t = 1000
        let victim: uid_t = 2000
        #expect(scheduler.arrive(Self.request(1, attacker, "y-reader", [("y", true)]), within: limits) == [1])
        #expect(
            scheduler.arrive(Self.request(2, attacker, "migrate", [("db", false), ("y", false)]), within: limits) == [])
        #expect(scheduler.locks["db"] == nil)
        var started: [Int] = []
        for id in 3..<13 {
            started += scheduler.arrive(Self.request(id, victim + uid_t(id), "report", [("db", true)]), within: limits)
        }
        #expect(started.count == 10, "shared claims on the free lock 'db' started: \(started)")
    }

    /// The writer waits for nothing but db's holders once its own commands end: then readers wait behind it
    /// again (writers first still protects a writer that could start), and it starts when they end.
    @Test func aWriterThatWaitsOnlyForTheLocksHoldersStillHoldsNewReaders() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 2, perUserWithoutRole: 1)
        #expect(scheduler.arrive(Self.request(1, 1000, "shell"), within: limits) == [1])
        #expect(scheduler.arrive(Self.request(2, 1000, "shell"), within: limits) == [2])
        #expect(scheduler.arrive(Self.request(3, 1000, "migrate", [("db", false)]), within: limits) == [])
        #expect(scheduler.arrive(Self.request(4, 2000, "report", [("db", true)]), within: limits) == [4])
        // Its share frees: 3 now waits only for reader 4, and a new reader waits behind it.
        #expect(scheduler.finish(1, within: limits) == [])
        let late = Self.request(5, 3000, "report", [("db", true)])
        #expect(scheduler.arrive(late, within: limits) == [])
        #expect(scheduler.blocker(of: late, within: limits) == .lockWaiter("db"))
        #expect(scheduler.finish(4, within: limits) == [3])
        #expect(scheduler.finish(3, within: limits) == [5])
    }

    /// A chain: writer A (db alone, y shared) defers on y to writer B (y alone), which waits for y's holder. A
    /// cannot start, so it holds no reader of the free db.
    @Test func aWriterThatDefersToAnotherWriterHoldsNoReaders() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 100, perUserWithoutRole: 1)
        #expect(scheduler.arrive(Self.request(1, 1000, "y-reader", [("y", true)]), within: limits) == [1])
        #expect(scheduler.arrive(Self.request(2, 1001, "y-writer", [("y", false)]), within: limits) == [])
        let writer = Self.request(3, 1002, "migrate", [("db", false), ("y", true)])
        #expect(scheduler.arrive(writer, within: limits) == [])
        #expect(scheduler.blocker(of: writer, within: limits) == .lockWaiter("y"))
        #expect(scheduler.arrive(Self.request(4, 2000, "report", [("db", true)]), within: limits) == [4])
    }

    /// Waiters that leave behind a head that waits for ever are not kept: the line holds at most about twice
    /// its waiters. (Before, every cancelled id stayed behind the stuck head until it started.)
    @Test func waitersThatLeaveBehindAStuckHeadAreNotKept() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 1, perUserWithoutRole: 1)
        #expect(scheduler.arrive(Self.request(1, 1000, "shell"), within: limits) == [1])
        #expect(scheduler.arrive(Self.request(2, 1000, "shell"), within: limits) == [])
        for id in 3..<1_003 {
            #expect(scheduler.arrive(Self.request(id, 1000, "shell"), within: limits) == [])
            #expect(scheduler.cancel(id, within: limits) == [])
        }
        #expect(scheduler.waitingCount == 1)
        #expect(scheduler.lineEntries <= 3, "ids kept in the line: \(scheduler.lineEntries)")
        // Some left in the middle of a line with live waiters behind them: order and service are kept.
        for id in 1_003..<1_010 { _ = scheduler.arrive(Self.request(id, 1000, "shell"), within: limits) }
        for id in [1_004, 1_006] { _ = scheduler.cancel(id, within: limits) }
        #expect(scheduler.waiters.map(\.id) == [2, 1_003, 1_005, 1_007, 1_008, 1_009])
        var started: [Int] = []
        var running = 1
        while scheduler.waitingCount > 0 {
            let next = scheduler.finish(running, within: limits)
            started += next
            running = next.first ?? running
            if next.isEmpty { break }
        }
        #expect(started == [2, 1_003, 1_005, 1_007, 1_008, 1_009])
        #expect(scheduler.lineEntries == 0)
    }

    /// Judging a running execution's share again as another holder class (a demoted administrator's).
    @Test func aRunningExecutionsShareIsJudgedAgainAsAnotherHolder() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 1, perUserWithoutRole: 1)
        var admin = Self.request(1, 1000, "a")
        admin.holder = .admin
        var second = Self.request(2, 1000, "b")
        second.holder = .admin
        #expect(scheduler.arrive(admin, within: limits) == [1])
        #expect(scheduler.arrive(second, within: limits) == [2])
        #expect(scheduler.shareDenial(ofRunning: 1, as: .admin, within: limits) == nil)
        #expect(scheduler.shareDenial(ofRunning: 2, as: .member, within: limits) == .userShare(limit: 1))
        #expect(scheduler.shareDenial(ofRunning: 3, as: .member, within: limits) == nil)
        #expect(scheduler.finish(1, within: limits) == [])
        #expect(scheduler.shareDenial(ofRunning: 2, as: .member, within: limits) == nil)
    }
}

/// Review 14, finding 1 in the daemon's own state: every uid without a passwd entry is one account for the
/// per-user limits (connections, pending-frame bytes, rate buckets, refusal records), so subordinate uids do not
/// multiply a role-less user's share. Users with a passwd entry keep their own.
@Suite struct AccountKeyTests {
    /// Two uids with no passwd entry (a user's subordinate uids, as `unshare --map-auto` maps them).
    static let unnamed: [uid_t] = [3_000_100_001, 3_000_100_002]

    static func caller(_ uid: uid_t) -> Caller {
        let caller = Caller.resolve(uid: uid, gid: uid, pid: 1, hasPidfd: false)
        #expect(caller.userName == nil, "uid \(uid) has a passwd entry here")
        return caller
    }

    @Test func uidsWithoutAPasswdEntryAreOneAccountAndUsersTheirOwn() throws {
        let (a, b) = (Self.caller(Self.unnamed[0]), Self.caller(Self.unnamed[1]))
        #expect(a.accountKey == FairShares.unknownAccounts && b.accountKey == a.accountKey)
        #expect(a.accountName == "uids without a passwd entry")
        let nobody = try #require(Caller.lookup(userName: "nobody"))
        #expect(nobody.accountKey == nobody.uid && nobody.accountName == "nobody")
        #expect(Caller.lookup(uid: 0).accountKey == 0)
        var unnamedRoot = Self.caller(Self.unnamed[0])
        unnamedRoot.uid = 0
        #expect(unnamedRoot.accountKey == 0)
    }

    /// The request bucket: the second unnamed uid finds the first's bucket empty; a named user has its own.
    @Test func uidsWithoutAPasswdEntryShareOneRateBucket() throws {
        let config = try ConfigLoader.parse(
            yaml: """
                limits:
                  request_rate: 1/1h
                roles:
                  developer: {users: [nobody]}
                executors:
                  x: {run_as: {user: nobody}, commands: any}
                """, file: "r.yaml")
        let limiter = RateLimiter()
        let (a, b) = (Self.caller(Self.unnamed[0]), Self.caller(Self.unnamed[1]))
        #expect(limiter.takeRequest("list", caller: a, config: config) == nil)
        #expect(limiter.takeRequest("list", caller: b, config: config)?.code == .rateLimited)
        let nobody = try #require(Caller.lookup(userName: "nobody"))
        #expect(limiter.takeRequest("list", caller: nobody, config: config) == nil)
    }

    /// Refusal records: the unnamed uids' first few are written in full, then only counted, whichever uid.
    @Test func uidsWithoutAPasswdEntryShareOneRefusalWindow() {
        let throttle = RefusalThrottle(logger: Logger(label: "AccountKeyTests"))
        let audit = RecordingAuditor()
        for uid in 3_000_100_000..<3_000_100_050 {
            let caller = Self.caller(uid_t(uid))
            let error = RunvoyError(.permissionDenied, "no role")
            throttle.record(
                AuditEvent(.requestDenied, priority: 4, message: error.message, fields: []), caller: caller,
                hasRole: false, audit: audit)
            throttle.recordCoalesced(
                RunvoyServer.refusedRecord(
                    caller, RunvoyServer.busy(.userShare(limit: 4), holder: .noRole), denial: .userShare(limit: 4),
                    holder: .noRole), caller: caller, audit: audit)
            throttle.recordRateLimited(
                RateLimiter.record(RunvoyError(.rateLimited, "too many"), caller: caller, method: "list"),
                caller: caller, audit: audit)
        }
        #expect(audit.events.filter { $0.kind == .requestDenied }.count == RefusalThrottle.limitWithoutRole)
        #expect(audit.events.filter { $0.kind == .connectionRefused }.count == 1)
        #expect(audit.events.filter { $0.kind == .rateLimited }.count == 1)
        throttle.flush(all: true, audit: audit)
        let summary = audit.events.first { $0.kind == .refusalsSuppressed }.map { Dictionary($0.fields) { $1 } }
        #expect(summary?["CALLER_USER"] == "uids without a passwd entry")
        #expect(summary?["SUPPRESSED"] == String(50 - RefusalThrottle.limitWithoutRole))
    }

    /// The connection share: role-less callers without a passwd entry hold `max_connections_without_role`
    /// together.
    @Test func uidsWithoutAPasswdEntryShareOneConnectionShare() {
        let connections = RunvoyServer.Connections()
        let limits = FairShares.Limits(total: 32, reserved: 2, perUser: 8, perUserWithoutRole: 2)
        let keys = (3_000_100_000..<3_000_100_004).map { Self.caller(uid_t($0)).accountKey }
        #expect(connections.open(keys[0], as: .noRole, within: limits) == nil)
        #expect(connections.open(keys[1], as: .noRole, within: limits) == nil)
        #expect(connections.open(keys[2], as: .noRole, within: limits) == .userShare(limit: 2))
        connections.closed(keys[0])
        #expect(connections.open(keys[3], as: .noRole, within: limits) == nil)
    }

    /// Pending-frame bytes: the unnamed uids' budget is one.
    @Test func uidsWithoutAPasswdEntryShareOnePendingFrameBudget() {
        let pending = PendingFrames()
        let (a, b) = (Self.caller(Self.unnamed[0]), Self.caller(Self.unnamed[1]))
        let held = pending.reserve(a.accountKey, 600, limit: 1000)
        #expect(held != nil)
        #expect(pending.reserve(b.accountKey, 600, limit: 1000) == nil)
        withExtendedLifetime(held) {}
    }
}

/// A waiter keeps the share class (administrator or not) it arrived with: a reload that takes a user's admin role
/// away (it stays a developer) neither re-plans it (`limitsChanged` re-plans only `concurrency` and locks) nor
/// decides it again at its turn (`redecided` checks access, executor, locks, concurrency), so it starts beyond
/// `max_executions_per_user` and may take the administrators' reserve.
@Suite(.serialized) struct AdmissionReviewPoCInProcessTests {
    @Test func aWaiterOfADemotedAdministratorStartsBeyondItsUsersShare() async throws {
        let fixture = try ExecLaunchTests.Fixture(limits: "{max_executions: 8, max_executions_per_user: 1}")
        var config = fixture.config
        let vault = try #require(config.executors.firstIndex { $0.name == "vault" })
        config.executors[vault].concurrency = 1
        var other = config.executors[vault]
        (other.name, other.isDefault, other.concurrency) = ("other", false, nil)
        config.executors.append(other)
        var demoted = config
        config.roles.append(RoleBinding(role: .admin, users: ["nobody"], groups: [], line: 0))
        demoted.digest = "demoted"
        let initial = config
        let manager = fixture.manager(PosixSpawner())
        manager.limitsChanged(initial)
        let nobody = try #require(UserDatabase.user(named: "nobody"))
        let caller = Caller.resolve(uid: nobody.uid, gid: nobody.gid, pid: getpid(), hasPidfd: false)
        let events = QueueInProcessTests.Events()
        try await ExecutionLifetimeTests.running(manager) {
            func start(_ executor: String) async throws -> Execution {
                try await manager.start(
                    ExecParams(argv: ["sleep", "600"], executor: executor), requestID: .number(1), caller: caller,
                    config: initial, sink: nil
                ) { _ in }
            }
            let onVault = try await start("vault")
            let elsewhere = try await start("other")
            let waiter = Task {
                try await manager.start(
                    ExecParams(argv: ["true"], executor: "vault", wait: true), requestID: .number(2), caller: caller,
                    config: initial, sink: nil, client: QueueInProcessTests.client(events)
                ) { _ in }
            }
            while await events.received.isEmpty { await Task.yield() }
            let id = try #require(await events.received.first?.executionId)
            // The admin role is taken away; the user stays a developer, with a share of 1 (`elsewhere` runs).
            manager.limitsChanged(demoted)
            let vaultID = onVault.id
            onVault.terminate()
            while manager.running(id: vaultID) != nil && manager.isQueued(id) { await Task.yield() }
            let stillWaits = manager.isQueued(id)
            #expect(stillWaits, "the demoted administrator's waiter started beyond max_executions_per_user (1)")
            _ = manager.cancel(id, by: "test")
            _ = try? await waiter.value.waitFinished()
            elsewhere.terminate()
        }
    }
}
