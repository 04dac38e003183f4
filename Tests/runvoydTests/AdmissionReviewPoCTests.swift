import Glibc
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
