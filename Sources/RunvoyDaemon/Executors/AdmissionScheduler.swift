import Glibc
import NIOCore

/// Which waiting executions may start, and when: the queue in front of the running executions. Pure: the owner
/// takes its lock around it, and starts what its methods return.
///
/// An execution may start when the caller's fair share allows one more (`FairShares`), its executor runs fewer
/// than its `concurrency`, and every lock it names is free (an exclusive one held by no one, a shared one held by
/// no one exclusively). It takes all of these at once or none. Waiters are served first come first served within a
/// user (only a user's oldest waiter is considered) and round-robin across users: after serving a user, the next
/// chance goes to the next user by uid that has a waiter, cyclically, so no user starves another. Whenever
/// something ends or leaves the queue, every user's oldest waiter that now fits is started.
struct AdmissionScheduler<ID: Hashable & Sendable>: Sendable {
    /// A lock an execution takes for its life.
    struct LockClaim: Hashable, Sendable {
        var name: String
        var shared: Bool
    }

    /// What one execution needs.
    struct Request: Sendable, Equatable {
        var id: ID
        var uid: uid_t
        var holder: FairShares.Holder
        var executor: String
        /// The executor's `concurrency`; nil for no limit of its own.
        var concurrency: Int?
        var locks: [LockClaim]
    }

    /// Who holds a lock.
    enum LockHolders: Sendable, Equatable {
        case exclusive(ID)
        case shared(Set<ID>)
    }

    private(set) var shares = FairShares()
    private(set) var running: [ID: Request] = [:]
    private(set) var runningOnExecutor: [String: Int] = [:]
    private(set) var locks: [String: LockHolders] = [:]
    /// Each user's waiters, oldest first, and the ones that left the queue behind its head (dropped when they
    /// reach it: leaving is O(1) however long the queue). A user's first entry is always a waiter.
    private var waiting: [uid_t: CircularBuffer<Request>] = [:]
    /// The user of each waiter; those that left are not here.
    private var waitingUser: [ID: uid_t] = [:]
    /// When each waiter arrived (a count), for writers first: a shared claim defers to an older exclusive one.
    private var arrival: [ID: UInt64] = [:]
    private var arrivals: UInt64 = 0
    /// The users with waiters, by uid.
    private var users: [uid_t] = []
    /// The user served last: the round-robin goes on after it.
    private var lastServed: uid_t?
    private(set) var waitingCount = 0

    /// Whether `id` waits.
    func isWaiting(_ id: ID) -> Bool { waitingUser[id] != nil }

    /// The waiters, each user's oldest first, users by uid.
    var waiters: [Request] { users.flatMap { (waiting[$0] ?? []).filter { waitingUser[$0.id] != nil } } }

    /// Queues `request` and starts whatever fits now (it, or nothing if it must wait).
    mutating func arrive(_ request: Request, within limits: FairShares.Limits) -> [ID] {
        precondition(running[request.id] == nil && !isWaiting(request.id), "an execution arrives twice")
        if waiting[request.uid] == nil {
            let index = users.firstIndex { $0 > request.uid } ?? users.endIndex
            users.insert(request.uid, at: index)
        }
        waiting[request.uid, default: []].append(request)
        waitingUser[request.id] = request.uid
        arrivals += 1
        arrival[request.id] = arrivals
        waitingCount += 1
        return startWhatFits(within: limits)
    }

    /// Whether `request` could start now if it were its user's oldest waiter.
    func fits(_ request: Request, within limits: FairShares.Limits) -> Bool {
        if shares.denial(request.uid, as: request.holder, within: limits) != nil { return false }
        if let concurrency = request.concurrency, runningOnExecutor[request.executor, default: 0] >= concurrency {
            return false
        }
        return request.locks.allSatisfy { claim in
            switch locks[claim.name] {
            case nil: return !claim.shared || !olderExclusiveWaiter(for: claim.name, than: request.id)
            case .exclusive: return false
            case .shared: return claim.shared && !olderExclusiveWaiter(for: claim.name, than: request.id)
            }
        }
    }

    /// Whether a user's oldest waiter that arrived before `id` needs `name` exclusively. While one does, no shared
    /// claim that came after it is let in, so shared holders coming and going cannot keep it waiting for ever
    /// (writers first). Only older ones: the oldest waiter never defers, so waiters cannot wait for each other.
    private func olderExclusiveWaiter(for name: String, than id: ID) -> Bool {
        let mine = arrival[id] ?? .max
        return users.contains { uid in
            guard let head = waiting[uid]?.first, head.id != id, let theirs = arrival[head.id], theirs < mine else {
                return false
            }
            return head.locks.contains { $0.name == name && !$0.shared }
        }
    }

    /// A running execution ended: what it held is free, and whatever fits now starts.
    mutating func finish(_ id: ID, within limits: FairShares.Limits) -> [ID] {
        guard let request = running.removeValue(forKey: id) else { return [] }
        shares.give(request.uid)
        runningOnExecutor[request.executor, default: 1] -= 1
        if runningOnExecutor[request.executor] == 0 { runningOnExecutor[request.executor] = nil }
        for claim in request.locks {
            if case .shared(var holders) = locks[claim.name], holders.count > 1 {
                holders.remove(id)
                locks[claim.name] = .shared(holders)
            } else {
                locks[claim.name] = nil
            }
        }
        return startWhatFits(within: limits)
    }

    /// The limits changed (a reload): whatever fits now starts.
    mutating func reconsider(within limits: FairShares.Limits) -> [ID] {
        startWhatFits(within: limits)
    }

    /// A waiter leaves the queue (cancelled, timed out, its client gone); whoever waited behind it may start.
    /// Returns nil when `id` was not waiting.
    mutating func cancel(_ id: ID, within limits: FairShares.Limits) -> [ID]? {
        guard let uid = waitingUser.removeValue(forKey: id) else { return nil }
        arrival[id] = nil
        waitingCount -= 1
        dropLeft(uid)
        return startWhatFits(within: limits)
    }

    /// Drops the entries at the head of `uid`'s queue that left it, and the user once none waits.
    private mutating func dropLeft(_ uid: uid_t) {
        while let head = waiting[uid]?.first, waitingUser[head.id] == nil { waiting[uid]!.removeFirst() }
        if waiting[uid]?.isEmpty == true {
            waiting[uid] = nil
            users.removeAll { $0 == uid }
        }
    }

    /// How many waiters on the same executor arrived before `id` (its place in line is this plus one), or nil
    /// when it does not wait.
    func ahead(of id: ID) -> Int? {
        guard let uid = waitingUser[id], let request = waiting[uid]?.first(where: { $0.id == id }) else {
            return nil
        }
        return waiters.prefix { $0.id != id }.count { $0.executor == request.executor }
    }

    /// Round-robin passes over the users after the last one served, each starting its oldest waiter if it fits,
    /// until a pass starts nothing.
    private mutating func startWhatFits(within limits: FairShares.Limits) -> [ID] {
        var started: [ID] = []
        while true {
            let after = lastServed.map { last in users.firstIndex { $0 > last } ?? users.endIndex } ?? 0
            let pass = Array(users[after...] + users[..<after])
            var any = false
            for uid in pass {
                guard let head = waiting[uid]?.first, fits(head, within: limits) else { continue }
                start(head)
                started.append(head.id)
                lastServed = uid
                any = true
            }
            if !any { return started }
        }
    }

    private mutating func start(_ request: Request) {
        waiting[request.uid]!.removeFirst()
        waitingUser[request.id] = nil
        arrival[request.id] = nil
        waitingCount -= 1
        dropLeft(request.uid)
        _ = shares.take(request.uid, as: request.holder, within: .unlimited)
        running[request.id] = request
        runningOnExecutor[request.executor, default: 0] += 1
        for claim in request.locks {
            if claim.shared, case .shared(var holders) = locks[claim.name] {
                holders.insert(request.id)
                locks[claim.name] = .shared(holders)
            } else {
                locks[claim.name] = claim.shared ? .shared([request.id]) : .exclusive(request.id)
            }
        }
    }
}

extension FairShares.Limits {
    /// No ceiling: for taking a share that was already judged to fit.
    static let unlimited = FairShares.Limits(total: .max, reserved: 0, perUser: .max, perUserWithoutRole: .max)
}
