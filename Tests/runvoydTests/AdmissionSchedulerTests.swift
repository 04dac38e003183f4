import Glibc
import Testing

@testable import RunvoyDaemon

/// The admission scheduler against a reference model: random arrivals, ends and cancellations with random
/// executors, lock sets and holders; after every step the two agree on what started, and the invariants hold.
@Suite struct AdmissionSchedulerTests {
    typealias Scheduler = AdmissionScheduler<Int>
    typealias Request = Scheduler.Request

    static let limits = FairShares.Limits(total: 6, reserved: 1, perUser: 3, perUserWithoutRole: 1)
    static let concurrency: [String: Int?] = ["a": 1, "b": 2, "c": nil]

    /// The rule written as plainly as possible: lists scanned in full at every step.
    struct Model {
        var waiting: [Request] = []
        var running: [Request] = []
        var lastServed: uid_t?

        func fits(_ request: Request) -> Bool { fits(request, ignoringHoldersOf: nil) }

        /// Whether `request` may start, not counting the holders of lock `ignored`.
        func fits(_ request: Request, ignoringHoldersOf ignored: String?) -> Bool {
            let limits = AdmissionSchedulerTests.limits
            let mine = running.filter { $0.uid == request.uid }.count
            if running.count >= limits.total { return false }
            if request.holder != .admin {
                if running.count >= limits.total - limits.reserved { return false }
                let share = request.holder == .noRole ? limits.perUserWithoutRole : limits.perUser
                if mine >= share { return false }
            }
            if let concurrency = request.concurrency,
                running.filter({ $0.executor == request.executor }).count >= concurrency
            {
                return false
            }
            for claim in request.locks where claim.name != ignored {
                let holders = running.flatMap { $0.locks }.filter { $0.name == claim.name }
                if !holders.isEmpty && (!claim.shared || holders.contains { !$0.shared }) { return false }
            }
            // First come first served within a user, among those that compete: on the same executor, or for a lock
            // one of them needs alone.
            let earlier = waiting.contains { other in
                other.uid == request.uid && other.id < request.id
                    && (other.executor == request.executor
                        || other.locks.contains { mine in
                            request.locks.contains { $0.name == mine.name && !($0.shared && mine.shared) }
                        })
            }
            if earlier { return false }
            // Writers first: a shared claim waits while a waiter come before it needs the lock alone and waits for
            // nothing but the lock's holders (one that cannot start anyway holds no reader of a free lock).
            return !request.locks.contains { claim in
                claim.shared
                    && waiting.contains { other in
                        other.id < request.id && other.locks.contains { $0.name == claim.name && !$0.shared }
                            && fits(other, ignoringHoldersOf: claim.name)
                    }
            }
        }

        mutating func schedule() -> [Int] {
            var started: [Int] = []
            while true {
                let users = Set(waiting.map(\.uid)).sorted()
                let pass =
                    users.filter { $0 > (lastServed ?? 0) || lastServed == nil }
                    + users.filter {
                        lastServed != nil && $0 <= lastServed!
                    }
                var any = false
                for uid in pass {
                    guard let index = waiting.firstIndex(where: { $0.uid == uid && fits($0) }) else { continue }
                    running.append(waiting.remove(at: index))
                    started.append(running.last!.id)
                    lastServed = uid
                    any = true
                }
                if !any { return started }
            }
        }
    }

    static func randomRequest(id: Int, using generator: inout some RandomNumberGenerator) -> Request {
        let uid = uid_t.random(in: 0..<5, using: &generator)
        let executor = ["a", "b", "c"].randomElement(using: &generator)!
        var locks: [Scheduler.LockClaim] = []
        for name in ["x", "y"] where Int.random(in: 0..<3, using: &generator) == 0 {
            locks.append(.init(name: name, shared: Bool.random(using: &generator)))
        }
        return Request(
            id: id, uid: uid, holder: uid == 0 ? .admin : uid == 4 ? .noRole : .member, executor: executor,
            concurrency: concurrency[executor]!, locks: locks)
    }

    /// What must hold of the scheduler's state after every step.
    static func checkInvariants(_ scheduler: Scheduler) {
        let running = Array(scheduler.running.values)
        #expect(running.count <= limits.total)
        #expect(running.filter { $0.holder != .admin }.count <= limits.total)
        for (executor, limit) in concurrency {
            if let limit { #expect(running.filter { $0.executor == executor }.count <= limit) }
        }
        for name in ["x", "y"] {
            let claims = running.flatMap(\.locks).filter { $0.name == name }
            // A lock held exclusively is held once, and by no one else.
            if claims.contains(where: { !$0.shared }) { #expect(claims.count == 1) }
        }
        // Nothing that could start waits.
        for waiter in scheduler.waiters {
            #expect(!scheduler.fits(waiter, within: limits))
        }
    }

    @Test func agreesWithTheModelAndServesEveryWaiter() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var scheduler = Scheduler()
            var model = Model()
            var nextID = 0
            var cancelled = Set<Int>()
            var started: [Int] = []
            for _ in 0..<Int.random(in: 1..<120, using: &generator) {
                let choice = Int.random(in: 0..<10, using: &generator)
                if choice < 5 || (scheduler.running.isEmpty && scheduler.waitingCount == 0) {
                    let request = Self.randomRequest(id: nextID, using: &generator)
                    nextID += 1
                    model.waiting.append(request)
                    let real = scheduler.arrive(request, within: Self.limits)
                    #expect(real == model.schedule())
                    started += real
                } else if choice < 8, let victim = scheduler.running.keys.randomElement(using: &generator) {
                    model.running.removeAll { $0.id == victim }
                    let real = scheduler.finish(victim, within: Self.limits)
                    #expect(real == model.schedule())
                    started += real
                } else if let victim = scheduler.waiters.randomElement(using: &generator)?.id {
                    model.waiting.removeAll { $0.id == victim }
                    cancelled.insert(victim)
                    let real = scheduler.cancel(victim, within: Self.limits)
                    #expect(real == model.schedule())
                    started += real ?? []
                }
                #expect(Set(scheduler.running.keys) == Set(model.running.map(\.id)))
                #expect(scheduler.waiters.map(\.id).sorted() == model.waiting.map(\.id).sorted())
                // The index of waiters by id (what `cancel` looks up) agrees with the model.
                #expect(model.waiting.allSatisfy { scheduler.isWaiting($0.id) })
                #expect(!model.running.contains { scheduler.isWaiting($0.id) })
                #expect(!cancelled.contains { scheduler.isWaiting($0) })
                Self.checkInvariants(scheduler)
            }
            // Every waiter is eventually served: end what runs until nothing waits.
            var rounds = 0
            while let victim = scheduler.running.keys.min(), rounds < 10_000 {
                started += scheduler.finish(victim, within: Self.limits)
                rounds += 1
            }
            #expect(scheduler.waitingCount == 0 && scheduler.waiters.isEmpty)
            #expect(Set(started).count == started.count, "an execution started twice")
            #expect(Set(started).union(cancelled) == Set(0..<nextID))
            #expect(scheduler.shares == FairShares() && scheduler.locks.isEmpty)
        }
    }

    /// Three users queue ten each on an executor with `concurrency: 1`: they are served in turn, each user's
    /// in the order they came.
    @Test func usersAreServedInTurnAndEachInOrder() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 100, perUserWithoutRole: 100)
        var started: [Int] = []
        for index in 0..<30 {
            // User 10 comes first with all of its ten, then 20, then 30.
            let uid = uid_t(10 * (index / 10 + 1))
            started += scheduler.arrive(
                Request(id: index, uid: uid, holder: .member, executor: "deploy", concurrency: 1, locks: []),
                within: limits)
        }
        #expect(started == [0])
        #expect(scheduler.ahead(of: 29) == 28)
        while let current = scheduler.running.keys.first {
            started += scheduler.finish(current, within: limits)
        }
        #expect(started.map { $0 / 10 } == Array(repeating: [0, 1, 2], count: 10).flatMap { $0 })
        for user in 0..<3 {
            let own = started.filter { $0 / 10 == user }
            #expect(own == own.sorted(), "user \(user)'s executions out of order")
        }
    }

    /// A user's oldest waiter, waiting for an executor with `concurrency: 1`, does not hold up that user's later
    /// requests for other executors, nor other locks; one for the same executor, or that wants one of its locks,
    /// still waits behind it. (Before, only each user's oldest waiter was considered: the one for 'b' waited.)
    @Test func aWaiterDoesNotHoldUpItsUsersRequestsForOtherThings() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 100, perUserWithoutRole: 100)
        func request(_ id: Int, _ uid: uid_t, _ executor: String, _ locks: [(String, Bool)] = []) -> Request {
            Request(
                id: id, uid: uid, holder: .member, executor: executor, concurrency: executor == "a" ? 1 : nil,
                locks: locks.map { .init(name: $0.0, shared: $0.1) })
        }
        #expect(scheduler.arrive(request(1, 2, "a"), within: limits) == [1])
        #expect(scheduler.arrive(request(2, 1, "a", [("x", false)]), within: limits) == [])
        #expect(scheduler.arrive(request(3, 1, "b"), within: limits) == [3])
        #expect(scheduler.arrive(request(4, 1, "c", [("y", false)]), within: limits) == [4])
        // Competing with its older waiter: the same executor, or a lock that one needs alone.
        #expect(scheduler.arrive(request(5, 1, "a"), within: limits) == [])
        #expect(scheduler.arrive(request(6, 1, "b", [("x", true)]), within: limits) == [])
        #expect(scheduler.finish(1, within: limits) == [2])
        #expect(scheduler.finish(2, within: limits) == [5, 6])
    }

    /// What a waiter waits for, as its `queued` events and a `busy` refusal say it: not "a concurrency of 0" when
    /// it waits behind its user's earlier execution.
    @Test func theBlockerNamesWhatAWaiterReallyWaitsFor() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 100, perUserWithoutRole: 100)
        func request(_ id: Int, _ uid: uid_t, _ executor: String, _ locks: [(String, Bool)] = []) -> Request {
            Request(
                id: id, uid: uid, holder: .member, executor: executor, concurrency: executor == "a" ? 1 : nil,
                locks: locks.map { .init(name: $0.0, shared: $0.1) })
        }
        #expect(scheduler.arrive(request(1, 2, "a"), within: limits) == [1])
        #expect(scheduler.arrive(request(2, 1, "a", [("x", false)]), within: limits) == [])
        #expect(scheduler.blocker(of: request(2, 1, "a", [("x", false)]), within: limits) == .concurrency(1))
        #expect(scheduler.arrive(request(3, 1, "b", [("x", true)]), within: limits) == [])
        #expect(scheduler.blocker(of: request(3, 1, "b", [("x", true)]), within: limits) == .earlier(2))
        // 2 waits for its executor, so it holds no reader of x (review 14); a writer that waits only for x's
        // holder (10) does.
        #expect(scheduler.arrive(request(10, 5, "c", [("x", true)]), within: limits) == [10])
        #expect(scheduler.arrive(request(11, 6, "c", [("x", false)]), within: limits) == [])
        #expect(scheduler.arrive(request(4, 3, "b", [("x", true)]), within: limits) == [])
        #expect(scheduler.blocker(of: request(4, 3, "b", [("x", true)]), within: limits) == .lockWaiter("x"))
    }

    /// What a refused `--no-wait` request is told names what it really waits for: never "a limit of 0".
    @Test func theBusyRefusalNamesWhatItWaitsFor() {
        typealias Ticketed = AdmissionScheduler<UInt64>
        var scheduler = Ticketed()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 100, perUserWithoutRole: 100)
        func request(_ id: UInt64, _ uid: uid_t, _ executor: String, _ locks: [(String, Bool)]) -> Ticketed.Request {
            Ticketed.Request(
                id: id, uid: uid, holder: .member, executor: executor, concurrency: executor == "a" ? 1 : nil,
                locks: locks.map { .init(name: $0.0, shared: $0.1) })
        }
        func told(_ request: Ticketed.Request) -> String {
            _ = scheduler.arrive(request, within: limits)
            return ExecutionManager.busy(request, scheduler, limits, running: [:], tickets: [:], mayView: { _ in true })
                .message
        }
        #expect(scheduler.arrive(request(1, 2, "a", []), within: limits) == [1])
        #expect(told(request(2, 1, "a", [("x", false)])).contains("running its limit of 1 (concurrency)"))
        #expect(told(request(3, 1, "b", [("x", true)])).contains("an earlier execution of yours"))
        // 2 waits for its executor, so it holds no reader of x (review 14); a writer that waits only for x's
        // holder (10) does.
        #expect(scheduler.arrive(request(10, 5, "c", [("x", true)]), within: limits) == [10])
        #expect(scheduler.arrive(request(11, 6, "c", [("x", false)]), within: limits) == [])
        #expect(told(request(4, 3, "b", [("x", true)])).contains("lock 'x'"))
        #expect(told(request(5, 4, "c", [("x", true)])).contains("wanted exclusively"))
        for (denial, limit) in [
            (FairShares.Denial.full(limit: 4), "max_connections"),
            (.reserved(limit: 4, reserved: 1), "reserved_admin_connections"),
        ] {
            let caller = Caller.resolve(uid: 0, gid: 0, pid: 1, hasPidfd: false)
            let record = RunvoyServer.refusedRecord(
                caller, RunvoyServer.busy(denial, holder: .member), denial: denial, holder: .member)
            #expect(Dictionary(record.fields) { $1 }["LIMIT"] == "limits.\(limit)")
        }
    }

    /// Locks are taken all at once: one that needs x and y does not hold x while it waits for y.
    @Test func locksAreTakenAllAtOnce() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 100, reserved: 0, perUser: 100, perUserWithoutRole: 100)
        func request(_ id: Int, _ uid: uid_t, _ locks: [(String, Bool)]) -> Request {
            Request(
                id: id, uid: uid, holder: .member, executor: "e", concurrency: nil,
                locks: locks.map { .init(name: $0.0, shared: $0.1) })
        }
        #expect(scheduler.arrive(request(1, 1, [("y", false)]), within: limits) == [1])
        #expect(scheduler.arrive(request(2, 2, [("x", false), ("y", false)]), within: limits) == [])
        #expect(scheduler.locks["x"] == nil)
        // 2 waits for y, which 1 holds: it cannot start whatever happens to x, so it does not hold readers of the
        // free x (writers first defers only to a writer that waits for nothing but that lock's holders; review 14:
        // else a writer that cannot start, held by another lock or its own share, starves a free lock's readers).
        #expect(scheduler.arrive(request(3, 3, [("x", true)]), within: limits) == [3])
        #expect(scheduler.arrive(request(4, 4, [("x", true)]), within: limits) == [4])
        #expect(scheduler.locks["x"] == .shared([3, 4]))
        // y is free now: 2 waits for x's holders alone, so from now on readers of x wait behind it.
        #expect(scheduler.finish(1, within: limits) == [])
        #expect(scheduler.locks["y"] == nil)
        #expect(scheduler.arrive(request(5, 5, [("x", true)]), within: limits) == [])
        #expect(scheduler.finish(3, within: limits) == [])
        #expect(scheduler.finish(4, within: limits) == [2])
        #expect(scheduler.locks["x"] == .exclusive(2) && scheduler.locks["y"] == .exclusive(2))
        #expect(scheduler.finish(2, within: limits) == [5])
    }

    /// Shared holders that keep coming cannot keep an exclusive waiter waiting for ever: once it waits, new shared
    /// claims wait behind it. (Before, 1,000 overlapping shared holders kept it waiting.)
    @Test func sharedHoldersCannotStarveAnExclusiveWaiter() {
        var scheduler = Scheduler()
        let limits = FairShares.Limits(total: 10_000, reserved: 0, perUser: 10_000, perUserWithoutRole: 10_000)
        func request(_ id: Int, _ uid: uid_t, shared: Bool) -> Request {
            Request(
                id: id, uid: uid, holder: .member, executor: "e", concurrency: nil,
                locks: [.init(name: "db", shared: shared)])
        }
        #expect(scheduler.arrive(request(1, 1, shared: true), within: limits) == [1])
        #expect(scheduler.arrive(request(2, 2, shared: false), within: limits) == [])
        var holder = 1
        var started: [Int] = []
        for next in 3..<1_003 {
            started += scheduler.arrive(request(next, 3, shared: true), within: limits)
            started += scheduler.finish(holder, within: limits)
            holder = next
            if started.contains(2) { break }
        }
        #expect(started.first == 2, "the exclusive waiter started first once the holder ended: \(started.prefix(5))")
    }
}
