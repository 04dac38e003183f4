import Glibc
import RunvoyConfig

/// How many of a shared resource (connections, running executions) each user holds, and whether one more may be
/// taken: no user other than an administrator may hold more than its share, and the last `reserved` of the
/// ceiling are kept for administrators, so that one user cannot deny the daemon to the others and an administrator
/// can always connect and act. Pure: the owner takes its lock around it.
struct FairShares: Sendable, Equatable {
    /// Who asks, as the shares tell callers apart.
    enum Holder: Sendable, Equatable {
        case admin
        case member
        /// A caller with no role: it may only greet, so it gets a small share.
        case noRole

        init(roles: Set<Role>) {
            self = roles.contains(.admin) ? .admin : roles.isEmpty ? .noRole : .member
        }
    }

    /// The ceilings, from the configuration in force when a share is asked for.
    struct Limits: Sendable, Equatable {
        var total: Int
        var reserved: Int
        var perUser: Int
        var perUserWithoutRole: Int

        static func connections(_ limits: RunvoyConfig.Limits) -> Limits {
            Limits(
                total: limits.maxConnections, reserved: limits.reservedAdminConnections,
                perUser: limits.maxConnectionsPerUser, perUserWithoutRole: limits.maxConnectionsWithoutRole)
        }

        static func executions(_ limits: RunvoyConfig.Limits) -> Limits {
            Limits(
                total: limits.maxExecutions, reserved: limits.reservedAdminExecutions,
                perUser: limits.maxExecutionsPerUser, perUserWithoutRole: limits.maxExecutionsPerUser)
        }
    }

    /// Why a share was refused.
    enum Denial: Sendable, Equatable {
        /// The whole ceiling is taken.
        case full(limit: Int)
        /// Only the administrators' reserve is left.
        case reserved(limit: Int, reserved: Int)
        /// The caller holds its whole share.
        case userShare(limit: Int)
    }

    /// What every uid with no passwd entry is counted as, together: such uids are not accounts of their own (an
    /// account with a subordinate uid range connects from a user namespace as any of its 65,536 uids), so they
    /// share one share. (`(uid_t)-1` is no uid the kernel gives.)
    static let unknownAccounts = uid_t.max

    /// Whom `caller`'s shares count against: its uid, or `unknownAccounts` when the user database has no entry
    /// for it (root excepted).
    static func account(of caller: Caller) -> uid_t {
        caller.uid == 0 || caller.userName != nil ? caller.uid : unknownAccounts
    }

    private(set) var total = 0
    private(set) var byUser: [uid_t: Int] = [:]

    /// How many `uid` holds.
    func held(by uid: uid_t) -> Int { byUser[uid] ?? 0 }

    /// Takes one for `uid`, or says why not (and takes nothing).
    mutating func take(_ uid: uid_t, as holder: Holder, within limits: Limits) -> Denial? {
        if let denial = denial(uid, as: holder, within: limits) { return denial }
        total += 1
        byUser[uid, default: 0] += 1
        return nil
    }

    /// Whether `uid` may take one more now.
    func denial(_ uid: uid_t, as holder: Holder, within limits: Limits) -> Denial? {
        if total >= limits.total { return .full(limit: limits.total) }
        switch holder {
        case .admin:
            return nil
        case .member, .noRole:
            if total >= limits.total - limits.reserved {
                return .reserved(limit: limits.total, reserved: limits.reserved)
            }
            let share = holder == .noRole ? min(limits.perUser, limits.perUserWithoutRole) : limits.perUser
            return held(by: uid) >= share ? .userShare(limit: share) : nil
        }
    }

    /// Gives back one that `uid` took.
    mutating func give(_ uid: uid_t) {
        guard let held = byUser[uid] else {
            assertionFailure("uid \(uid) gives back a share it does not hold")
            return
        }
        total -= 1
        byUser[uid] = held > 1 ? held - 1 : nil
    }
}
