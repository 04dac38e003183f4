import Glibc

/// Which account a peer uid counts as for the per-user limits: connections and pending-frame bytes
/// (`FairShares.account(of:)`), and rate buckets and the refusal records' windows (here, the same).
///
/// A uid with a passwd entry (or root) is an account of its own. Every uid WITHOUT one is the same account: a
/// user with subordinate uids (`unshare --map-auto`, newuidmap) can connect as thousands of them, and each would
/// otherwise get a share of its own. Those uids hold no role (roles bind user names), so they only lose the
/// little a role-less caller may hold anyway.
extension Caller {
    /// How records name the account of all uids without a passwd entry.
    static let unknownAccountsName = "uids without a passwd entry"

    /// The account this caller counts as for the per-user limits (`FairShares.account(of:)`).
    var accountKey: uid_t { FairShares.account(of: self) }

    /// How the per-user limits' records name that account: the user, or all uids without a passwd entry.
    var accountName: String { accountKey == uid ? displayName : Self.unknownAccountsName }
}
