import Glibc
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
