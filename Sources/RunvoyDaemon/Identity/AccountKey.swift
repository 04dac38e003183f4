import Glibc

/// Which account a peer uid counts as for the per-user limits: connections, pending-frame bytes, rate buckets
/// and the refusal records' windows.
///
/// A uid with a passwd entry (or root) is an account of its own. Every uid WITHOUT one is the same account: a
/// user with subordinate uids (`unshare --map-auto`, newuidmap) can connect as thousands of them, and each would
/// otherwise get a share of its own. Those uids hold no role (roles bind user names), so they only lose the
/// little a role-less caller may hold anyway.
enum AccountKey {
    /// The one key of all uids without a passwd entry: `(uid_t)-1`, which is never a process's uid.
    static let withoutPasswdEntry: uid_t = .max
    /// How records name that account.
    static let withoutPasswdEntryName = "uids without a passwd entry"

    /// The account key of `uid`, given whether it has a passwd entry.
    static func of(uid: uid_t, hasPasswdEntry: Bool) -> uid_t {
        hasPasswdEntry || uid == 0 ? uid : withoutPasswdEntry
    }
}

extension Caller {
    /// The account this caller counts as for the per-user limits (`AccountKey`).
    var accountKey: uid_t { AccountKey.of(uid: uid, hasPasswdEntry: userName != nil) }

    /// How the per-user limits' records name that account: the user, or all uids without a passwd entry.
    var accountName: String { accountKey == uid ? displayName : AccountKey.withoutPasswdEntryName }
}
