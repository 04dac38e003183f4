import Glibc
import RunvoyKit

/// Who is on the other end of a connection, as the kernel reports it (SO_PEERCRED) and NSS names it.
struct Caller: Sendable, Equatable {
    var uid: uid_t
    var gid: gid_t
    var pid: pid_t
    /// The user name, or nil when the uid has no entry in the user database.
    var userName: String?
    var groupName: String?
    /// Names of all the user's groups (primary and supplementary) from the group database.
    var groupNames: [String]
    /// Whether the kernel gave a pidfd for the peer (SO_PEERPIDFD).
    var hasPidfd: Bool
    /// The ids of all the user's groups (as `groupNames`), plus `gid`.
    var groupIDs: [gid_t] = []

    /// Whether the caller is root, who is always an administrator (other administrators hold the `admin` role;
    /// see `Authorizer.roles`).
    var isRoot: Bool { uid == 0 }

    /// The user name, or `#uid` when the database has none.
    var displayName: String { userName ?? "#\(uid)" }

    /// The caller a user would be (for `explain --user` and policy expectations), or nil when there is no
    /// such user.
    static func lookup(userName: String) -> Caller? {
        guard let user = UserDatabase.user(named: userName) else { return nil }
        return resolve(uid: user.uid, gid: user.gid, pid: 0, hasPidfd: false)
    }

    /// The caller a uid would be (for the owner of a stored secret): its primary group and groups from the
    /// databases. A uid without a passwd entry gets only its uid (and so no roles unless it is root).
    static func lookup(uid: uid_t) -> Caller {
        resolve(uid: uid, gid: UserDatabase.user(uid: uid)?.gid ?? gid_t.max, pid: 0, hasPidfd: false)
    }

    /// This caller with its names and groups read again from the databases. A connection's caller is resolved
    /// once, when it connects: someone removed from a group since is still a member on a connection kept open.
    var refreshed: Caller { Caller.resolve(uid: uid, gid: gid, pid: pid, hasPidfd: hasPidfd) }

    /// Resolves names for kernel-reported credentials.
    static func resolve(uid: uid_t, gid: gid_t, pid: pid_t, hasPidfd: Bool) -> Caller {
        let user = UserDatabase.user(uid: uid)
        var groupNames: [String] = []
        var groupIDs = [gid]
        if let user {
            groupIDs += UserDatabase.groupIDs(user: user.name, primary: gid)
            groupNames = groupIDs.dropFirst().compactMap { UserDatabase.groupName(gid: $0) }
        } else if let name = UserDatabase.groupName(gid: gid) {
            groupNames = [name]
        }
        return Caller(
            uid: uid, gid: gid, pid: pid, userName: user?.name, groupName: UserDatabase.groupName(gid: gid),
            groupNames: groupNames, hasPidfd: hasPidfd, groupIDs: groupIDs)
    }

    /// Who path rules must guard against redirecting a path between the check and the open: the caller, with
    /// every group it has; nil for root, who could change anything anyway.
    var pathWriter: PathResolver.Writer? {
        isRoot ? nil : PathResolver.Writer(uid: uid, groups: Set(groupIDs + [gid]))
    }
}
