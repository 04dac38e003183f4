import Glibc
import RunvoyConfig
import RunvoyKit

/// Named locks: what an execution that cannot have one is told, and the lock table `locks` reports. The locks
/// themselves are taken and given back by `AdmissionScheduler`, with the rest of an execution's admission: all
/// of them at once when it is admitted, all of them when it ends, however it ends (its ticket is finished by
/// `unregister`, or by `release` when its launch fails).
extension ExecutionManager {
    /// The running executions by the ticket each holds.
    static func byTicket(running: [String: Execution], tickets: [String: UInt64]) -> [UInt64: Execution] {
        var byTicket: [UInt64: Execution] = [:]
        for (id, ticket) in tickets { byTicket[ticket] = running[id] }
        return byTicket
    }

    /// The tickets holding any of `claims` in a way that keeps them from being taken now (nil: none).
    static func heldLocks(
        _ claims: [AdmissionScheduler<UInt64>.LockClaim], _ scheduler: AdmissionScheduler<UInt64>
    ) -> [UInt64]? {
        var tickets: [UInt64] = []
        for claim in claims {
            switch scheduler.locks[claim.name] {
            case nil: continue
            case .shared where claim.shared: continue
            case .shared(let ids): tickets += ids.sorted()
            case .exclusive(let id): tickets.append(id)
            }
        }
        return tickets.isEmpty ? nil : tickets
    }

    /// The refusal of `request` for the first lock it needs (by name) that is held against it, naming the
    /// holders; nil when every lock it needs is free for it.
    static func lockBusy(
        _ request: AdmissionScheduler<UInt64>.Request, _ scheduler: AdmissionScheduler<UInt64>,
        running: [String: Execution], tickets: [String: UInt64], runHolds: [UInt64: RunHold] = [:],
        mayView: (uid_t) -> Bool
    ) -> RunvoyError? {
        for claim in request.locks {
            let holders: [UInt64]
            switch scheduler.locks[claim.name] {
            case nil: continue
            case .shared where claim.shared: continue
            case .shared(let ids): holders = ids.sorted()
            case .exclusive(let id): holders = [id]
            }
            let executions = byTicket(running: running, tickets: tickets)
            let now = WallClock.milliseconds()
            let named = holders.map { ticket -> String in
                guard let execution = executions[ticket] else {
                    if let hold = runHolds[ticket] { return hold.describe(visible: mayView(hold.caller.uid), now: now) }
                    let uid = scheduler.running[ticket]?.uid
                    guard let uid, mayView(uid) else { return "an execution being started" }
                    return "an execution being started by \(Caller.lookup(uid: uid).displayName)"
                }
                let held = Duration.milliseconds(max(0, now - execution.startedAtMs))
                let whose =
                    mayView(execution.caller.uid)
                    ? "\(execution.id) by \(execution.caller.displayName) on '\(execution.executorName)'"
                    : "another user's execution"
                return whose + " for " + DurationParser.format(Duration.seconds(held.components.seconds))
            }
            let mode = claim.shared ? "shared" : "exclusive"
            return RunvoyError(
                .busy,
                "lock '\(claim.name)' (needed \(mode) by executor '\(request.executor)') is held by "
                    + named.sorted().joined(separator: ", "))
        }
        return nil
    }

    /// Every lock the configuration declares or an execution holds or waits for, by name: its mode, its holders
    /// (running executions, or admitted ones still being launched) and its waiters, oldest first. As `viewer` may
    /// see them: another user's execution without its id and user unless it may see that user's executions, and
    /// executors it may not use not at all.
    func lockTable(_ config: DaemonConfig, for viewer: Caller) -> [LockInfo] {
        let (scheduler, executions, runHolds) = admissionSnapshot()
        let usable = Set(config.executors.filter { Authorizer.mayUse(viewer, $0, config) }.map(\.name))
        let visible = Visibility(
            mayView: { Authorizer.mayView(viewer, ownerUid: $0, config) }, mayUse: { usable.contains($0) })
        var declared: [String: Set<String>] = [:]
        for executor in config.executors where usable.contains(executor.name) {
            for lock in executor.locks { declared[executor.name, default: []].insert(lock.name) }
        }
        var byLock: [String: [String]] = [:]
        for (executor, names) in declared {
            for name in names { byLock[name, default: []].append(executor) }
        }
        // The waiters once (not per lock), and each user's name looked up once (NSS may be slow: LDAP, sssd).
        let allWaiters = scheduler.waiters.filter { !$0.locks.isEmpty }
        var names: [uid_t: String] = [:]
        func name(_ uid: uid_t) -> String {
            if let known = names[uid] { return known }
            let found = Caller.lookup(uid: uid).displayName
            names[uid] = found
            return found
        }
        let lockNames = Set(byLock.keys).union(scheduler.locks.keys).union(allWaiters.flatMap { $0.locks.map(\.name) })
        return lockNames.sorted().map { lock in
            let (mode, ids): (String, [UInt64]) =
                switch scheduler.locks[lock] {
                case nil: ("free", [])
                case .exclusive(let id): ("exclusive", [id])
                case .shared(let ids): ("shared", ids.sorted())
                }
            let holders = ids.compactMap { ticket in
                scheduler.running[ticket].map {
                    Self.holder(
                        $0, lock, execution: executions[ticket], user: executions[ticket] == nil ? name : nil,
                        visible, run: runHolds[ticket])
                }
            }
            let waiters = allWaiters.filter { $0.locks.contains { $0.name == lock } }.map {
                Self.holder($0, lock, execution: nil, user: name, visible, run: runHolds[$0.id])
            }
            return LockInfo(
                name: lock, mode: mode, executors: (byLock[lock] ?? []).sorted(), holders: holders, waiters: waiters)
        }
    }

    /// What a caller of `locks` may see.
    struct Visibility {
        /// Whether it may see the executions of this user.
        let mayView: (uid_t) -> Bool
        /// Whether it may use this executor.
        let mayUse: (String) -> Bool
    }

    private static func holder(
        _ request: AdmissionScheduler<UInt64>.Request, _ lock: String, execution: Execution?,
        user: ((uid_t) -> String)?, _ visible: Visibility, run: RunHold? = nil
    ) -> LockHolder {
        let shared = request.locks.first { $0.name == lock }?.shared ?? false
        let executor = visible.mayUse(request.executor) ? request.executor : nil
        guard visible.mayView(request.uid) else {
            return LockHolder(
                executionId: nil, user: "another user", uid: nil, executor: executor, shared: shared,
                sinceMs: execution?.startedAtMs ?? run?.sinceMs)
        }
        // A playbook run that holds its playbook's locks is named by its run id.
        return LockHolder(
            executionId: execution?.id ?? run?.runID,
            user: execution?.caller.displayName ?? user?(request.uid) ?? Caller.lookup(uid: request.uid).displayName,
            uid: request.uid, executor: executor, shared: shared, sinceMs: execution?.startedAtMs ?? run?.sinceMs)
    }
}

extension ExecPlan {
    /// The executor's locks as the scheduler takes them: all at once, in the order of their names.
    var lockClaims: [AdmissionScheduler<UInt64>.LockClaim] { executor.lockClaims }
}

extension ExecutorConfig {
    /// Its locks as the scheduler takes them: all at once, in the order of their names.
    var lockClaims: [AdmissionScheduler<UInt64>.LockClaim] {
        locks.map { AdmissionScheduler<UInt64>.LockClaim(name: $0.name, shared: $0.shared) }
    }
}
