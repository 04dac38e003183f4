import RunvoyKit

/// Existence checks against the user and group databases (NSS), for validation.
enum SystemAccounts {
    static func userExists(_ name: String) -> Bool { UserDatabase.user(named: name) != nil }

    static func groupExists(_ name: String) -> Bool { UserDatabase.groupID(named: name) != nil }
}
