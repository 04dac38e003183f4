import Glibc
import NIOCore

/// Which waiting executions may start, and when: the queue in front of the running executions. Pure: the owner
/// takes its lock around it, and starts what its methods return.
///
/// An execution may start when the caller's fair share allows one more (`FairShares`), its executor runs fewer
/// than its `concurrency`, and every lock it names is free (an exclusive one held by no one, a shared one held by
/// no one exclusively). It takes all of these at once or none. Waiters are served first come first served within a
/// user, but only among those that compete for the same thing: a waiter waits behind an older one of its user on
/// the same executor, or that claims one of its locks (not both shared); it does not wait behind one that waits
/// for another executor or other locks. Across users, round-robin: after serving a user, the next chance goes to
/// the next user by uid that has a waiter, cyclically, so no user starves another; each chance starts the user's
/// oldest waiter that may start. Whenever something ends or leaves the queue, whatever now may start is started.
/// Writers first: a shared claim on a lock waits behind an older exclusive claim on it whose waiter waits for
/// nothing but that lock's holders (not behind one that could not start anyway). A claim of locks only
/// (a playbook run's hold, under a key that is no executor's name and with no `concurrency`) waits and holds as an
/// execution does, its share included; the executions of its run (`Request.inRunHold`) use that share: they take
/// none and wait for none.
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
        /// A step of a run that holds locks: it uses its run's share (one step at a time), so it takes none and is
        /// not kept waiting for one, by anything of its user's that started in between either.
        var inRunHold = false
        /// The user's line it waits in, first come first served with the others in it; nil for its executor's.
        /// A playbook run's step waits in a line of its run, so that it never waits behind its user's older
        /// waiters on that executor (which may be waiting for the very locks its run holds).
        var line: String? = nil

        /// The key of its user's line.
        var lineKey: String { line ?? executor }
    }

    /// Who holds a lock.
    enum LockHolders: Sendable, Equatable {
        case exclusive(ID)
        case shared(Set<ID>)
    }

    /// What a waiter waits for, the first that holds it of: its share (or the global ceiling), its executor's
    /// `concurrency`, a lock held against it, an older execution of the same user that competes with it, an
    /// older waiter that needs one of its (shared) locks alone.
    enum Blocker: Sendable, Equatable {
        case share(FairShares.Denial)
        case concurrency(Int)
        case lock(String)
        case earlier(ID)
        case lockWaiter(String)
    }

    private struct Waiter: Sendable {
        var request: Request
        var arrival: UInt64
    }

    /// The arrivals of the waiting claims on one lock (of all users, or of one), oldest first.
    private struct Claims: Sendable {
        var all: [UInt64] = []
        var exclusive: [UInt64] = []
        var isEmpty: Bool { all.isEmpty }
    }

    private struct UserLock: Hashable, Sendable {
        var uid: uid_t
        var name: String
    }

    typealias Denial = FairShares.Denial

    private(set) var shares = FairShares()
    private(set) var running: [ID: Request] = [:]
    private(set) var runningOnExecutor: [String: Int] = [:]
    private(set) var locks: [String: LockHolders] = [:]
    /// Each user's waiters on each executor, oldest first, and the ones that left the queue behind their line's
    /// head (dropped when they reach it, or when they are half the line: leaving is amortized O(1) however long
    /// the queue, and a head that waits for ever does not keep them). A line's first entry is always a waiter.
    private var lines: [uid_t: [String: CircularBuffer<ID>]] = [:]
    /// How many of each line's entries left the queue behind its head.
    private var departed: [uid_t: [String: Int]] = [:]
    /// How many ids the lines hold, waiters and those that left behind a head (bounded by twice the waiters).
    var lineEntries: Int { lines.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } } }
    /// The waiters, by id; those that left are not here.
    private var waiting: [ID: Waiter] = [:]
    /// The waiting exclusive claims on each lock (writers first), and each user's waiting claims on each lock.
    private var exclusiveClaims: [String: [UInt64]] = [:]
    private var userClaims: [UserLock: Claims] = [:]
    private var arrivals: UInt64 = 0
    /// The waiters by arrival.
    private var byArrival: [UInt64: ID] = [:]
    /// The users with waiters, by uid.
    private var users: [uid_t] = []
    /// The user served last: the round-robin goes on after it.
    private var lastServed: uid_t?
    var waitingCount: Int { waiting.count }

    /// Whether `id` waits.
    func isWaiting(_ id: ID) -> Bool { waiting[id] != nil }

    /// What the waiter `id` needs now.
    func request(waiting id: ID) -> Request? { waiting[id]?.request }

    /// The waiters, users by uid, each user's oldest first.
    var waiters: [Request] {
        users.flatMap { uid in
            (lines[uid] ?? [:]).values.flatMap { $0.compactMap { waiting[$0] } }.sorted { $0.arrival < $1.arrival }
                .map(\.request)
        }
    }

    /// Queues `request` and starts whatever fits now (it, or nothing if it must wait).
    mutating func arrive(_ request: Request, within limits: FairShares.Limits) -> [ID] {
        precondition(running[request.id] == nil && !isWaiting(request.id), "an execution arrives twice")
        if lines[request.uid] == nil {
            let index = users.firstIndex { $0 > request.uid } ?? users.endIndex
            users.insert(request.uid, at: index)
        }
        lines[request.uid, default: [:]][request.lineKey, default: []].append(request.id)
        arrivals += 1
        let waiter = Waiter(request: request, arrival: arrivals)
        waiting[request.id] = waiter
        byArrival[arrivals] = request.id
        claim(waiter)
        return startWhatFits(within: limits)
    }

    /// Whether `request` (a waiter, or one about to be) may start now.
    func fits(_ request: Request, within limits: FairShares.Limits) -> Bool {
        blocker(of: request, within: limits) == nil
    }

    /// What keeps `request` (a waiter) from starting now; nil when it may start.
    func blocker(of request: Request, within limits: FairShares.Limits) -> Blocker? {
        var ready: [WriterKey: Bool] = [:]
        return blocker(of: request, ignoringHoldersOf: nil, within: limits, ready: &ready)
    }

    /// A waiter's exclusive claim on a lock, by its arrival.
    private struct WriterKey: Hashable {
        var arrival: UInt64
        var name: String
    }

    /// What keeps `request` from starting now, not counting the holders of `ignored` (nil: counting all);
    /// `ready` remembers `waitsOnlyForHolders` answers within one question.
    private func blocker(
        of request: Request, ignoringHoldersOf ignored: String?, within limits: FairShares.Limits,
        ready: inout [WriterKey: Bool]
    ) -> Blocker? {
        if !request.inRunHold, let denial = shares.denial(request.uid, as: request.holder, within: limits) {
            return .share(denial)
        }
        if let concurrency = request.concurrency, runningOnExecutor[request.executor, default: 0] >= concurrency {
            return .concurrency(concurrency)
        }
        for claim in request.locks where claim.name != ignored {
            switch locks[claim.name] {
            case nil: continue
            case .shared where claim.shared: continue
            case .shared, .exclusive: return .lock(claim.name)
            }
        }
        let mine = waiting[request.id]?.arrival ?? .max
        if let head = lines[request.uid]?[request.lineKey]?.first, head != request.id, isWaiting(head) {
            return .earlier(head)
        }
        for claim in request.locks {
            let own = userClaims[UserLock(uid: request.uid, name: claim.name)]
            if let older = (claim.shared ? own?.exclusive : own?.all)?.first, older < mine {
                return .earlier(byArrival[older] ?? request.id)
            }
            // Writers first: while an older waiter needs the lock alone and waits for nothing but its holders, no
            // shared claim that came after it is let in, so shared holders coming and going cannot keep it waiting
            // for ever. Only such a writer: one that cannot start anyway (its share, its executor, an earlier
            // waiter of its user, another lock) does not hold readers of a free lock. Only older ones: the oldest
            // waiter never defers, so waiters cannot wait for each other.
            if claim.shared, defersToWriter(on: claim.name, before: mine, within: limits, ready: &ready) {
                return .lockWaiter(claim.name)
            }
        }
        return nil
    }

    /// Whether a waiter that came before `arrival` needs `name` alone and waits for nothing but its holders.
    private func defersToWriter(
        on name: String, before arrival: UInt64, within limits: FairShares.Limits, ready: inout [WriterKey: Bool]
    ) -> Bool {
        for older in exclusiveClaims[name] ?? [] {
            guard older < arrival else { return false }
            let key = WriterKey(arrival: older, name: name)
            if ready[key] == nil {
                // (Asked of older waiters only, so this ends; each claim is judged once per question.)
                ready[key] = false
                if let id = byArrival[older], let writer = waiting[id] {
                    ready[key] =
                        blocker(of: writer.request, ignoringHoldersOf: name, within: limits, ready: &ready) == nil
                }
            }
            if ready[key] == true { return true }
        }
        return false
    }

    /// A running execution ended: what it held is free, and whatever fits now starts.
    mutating func finish(_ id: ID, within limits: FairShares.Limits) -> [ID] {
        guard let request = running.removeValue(forKey: id) else { return [] }
        if !request.inRunHold { shares.give(request.uid) }
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

    /// Whether the running `id` would exceed its user's share as `holder` (others of its user running, and it
    /// not): for judging it again when its user's roles changed as it started. Nil when it fits or does not run.
    func shareDenial(ofRunning id: ID, as holder: FairShares.Holder, within limits: FairShares.Limits) -> Denial? {
        guard let request = running[id], !request.inRunHold else { return nil }
        var others = shares
        others.give(request.uid)
        return others.denial(request.uid, as: holder, within: limits)
    }

    /// The limits changed (a reload): whatever fits now starts.
    mutating func reconsider(within limits: FairShares.Limits) -> [ID] {
        startWhatFits(within: limits)
    }

    /// A waiter leaves the queue (cancelled, timed out, its client gone); whoever waited behind it may start.
    /// Returns nil when `id` was not waiting.
    mutating func cancel(_ id: ID, within limits: FairShares.Limits) -> [ID]? {
        guard let waiter = waiting[id] else { return nil }
        forget(waiter)
        return startWhatFits(within: limits)
    }

    /// The waiter `request.id` needs what `request` says now (a reload changed its executor's `concurrency` or
    /// locks): it keeps its place in its line. Nothing starts here (`reconsider` once all are replanned). False
    /// when it does not wait, or `request` is for another user or executor.
    @discardableResult
    mutating func replan(_ request: Request) -> Bool {
        guard let waiter = waiting[request.id], waiter.request.executor == request.executor,
            waiter.request.lineKey == request.lineKey,
            request.uid == waiter.request.uid
        else { return false }
        unclaim(waiter)
        waiting[request.id]?.request = request
        claim(Waiter(request: request, arrival: waiter.arrival))
        return true
    }

    private mutating func claim(_ waiter: Waiter) {
        for claim in waiter.request.locks {
            let key = UserLock(uid: waiter.request.uid, name: claim.name)
            Self.insert(waiter.arrival, into: &userClaims[key, default: Claims()].all)
            if !claim.shared {
                Self.insert(waiter.arrival, into: &userClaims[key, default: Claims()].exclusive)
                Self.insert(waiter.arrival, into: &exclusiveClaims[claim.name, default: []])
            }
        }
    }

    private mutating func unclaim(_ waiter: Waiter) {
        for claim in waiter.request.locks {
            let key = UserLock(uid: waiter.request.uid, name: claim.name)
            Self.remove(waiter.arrival, from: &userClaims[key, default: Claims()].all)
            Self.remove(waiter.arrival, from: &userClaims[key, default: Claims()].exclusive)
            if userClaims[key]?.isEmpty == true { userClaims[key] = nil }
            Self.remove(waiter.arrival, from: &exclusiveClaims[claim.name, default: []])
            if exclusiveClaims[claim.name]?.isEmpty == true { exclusiveClaims[claim.name] = nil }
        }
    }

    /// Takes `waiter` out of the queue (it started or left).
    private mutating func forget(_ waiter: Waiter) {
        let request = waiter.request
        waiting[request.id] = nil
        byArrival[waiter.arrival] = nil
        unclaim(waiter)
        let (uid, executor) = (request.uid, request.lineKey)
        // Taken out of the table while changed, so that it is not copied.
        var line = lines[uid]?.removeValue(forKey: executor) ?? []
        var gone = departed[uid]?[executor] ?? 0
        if line.first == request.id {
            line.removeFirst()
            while let head = line.first, waiting[head] == nil {
                line.removeFirst()
                gone -= 1
            }
        } else {
            gone += 1
            if gone * 2 > line.count {
                line = CircularBuffer(line.filter { waiting[$0] != nil })
                gone = 0
            }
        }
        lines[uid]?[executor] = line.isEmpty ? nil : line
        departed[uid, default: [:]][executor] = gone > 0 ? gone : nil
        if departed[uid]?.isEmpty == true { departed[uid] = nil }
        if lines[uid]?.isEmpty == true {
            lines[uid] = nil
            users.removeAll { $0 == uid }
        }
    }

    /// The index of the first of `list` (sorted) not below `arrival`.
    private static func index(of arrival: UInt64, in list: [UInt64]) -> Int {
        var low = 0
        var high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle] < arrival { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private static func insert(_ arrival: UInt64, into list: inout [UInt64]) {
        let index = index(of: arrival, in: list)
        if index == list.count || list[index] != arrival { list.insert(arrival, at: index) }
    }

    private static func remove(_ arrival: UInt64, from list: inout [UInt64]) {
        let index = index(of: arrival, in: list)
        if index < list.count, list[index] == arrival { list.remove(at: index) }
    }

    /// How many waiters on the same executor come before `id` in `waiters` (its place in line is this plus one),
    /// or nil when it does not wait.
    func ahead(of id: ID) -> Int? {
        guard let request = waiting[id]?.request else { return nil }
        return waiters.prefix { $0.id != id }.count { $0.executor == request.executor }
    }

    /// `uid`'s oldest waiter that may start now: the heads of its lines (a waiter behind another on its executor
    /// competes with it), oldest first.
    private func candidate(of uid: uid_t, within limits: FairShares.Limits) -> Waiter? {
        let heads = (lines[uid] ?? [:]).values.compactMap { $0.first.flatMap { waiting[$0] } }
        return heads.sorted { $0.arrival < $1.arrival }.first { fits($0.request, within: limits) }
    }

    /// Round-robin passes over the users after the last one served, each starting its oldest waiter that may
    /// start, until a pass starts nothing.
    private mutating func startWhatFits(within limits: FairShares.Limits) -> [ID] {
        var started: [ID] = []
        while true {
            let after = lastServed.map { last in users.firstIndex { $0 > last } ?? users.endIndex } ?? 0
            let pass = Array(users[after...] + users[..<after])
            var any = false
            for uid in pass {
                guard let waiter = candidate(of: uid, within: limits) else { continue }
                start(waiter)
                started.append(waiter.request.id)
                lastServed = uid
                any = true
            }
            if !any { return started }
        }
    }

    private mutating func start(_ waiter: Waiter) {
        let request = waiter.request
        forget(waiter)
        if !request.inRunHold { _ = shares.take(request.uid, as: request.holder, within: .unlimited) }
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
