import RunvoyConfig
import RunvoyKit

/// Who may run a playbook: a caller with the exec permission on its `access` list (users, groups, roles, as an
/// executor's), and administrators always. Running it still needs each step's executor (see `PlaybookRun`).
enum PlaybookAccess {
    static func mayRun(_ caller: Caller, _ playbook: PlaybookConfig, _ config: DaemonConfig) -> Bool {
        let roles = Authorizer.roles(caller, config)
        guard PermissionTable.permits(roles, .exec) else { return false }
        if roles.contains(.admin) { return true }
        guard let name = caller.userName else { return false }
        return playbook.access.admits(userName: name, groupNames: caller.groupNames, roles: roles)
    }

    /// The playbooks `caller` may run, by name.
    static func runnable(_ caller: Caller, _ config: DaemonConfig) -> [PlaybookConfig] {
        config.playbooks.filter { mayRun(caller, $0, config) }.sorted { $0.name < $1.name }
    }

    /// `NAME` as an error message shows it: plain when it is spelt like a playbook's name, else as JSON text cut
    /// to 64 characters, so a caller cannot carry controls into messages and the audit trail.
    static func label(_ name: String) -> String {
        let plain =
            !name.isEmpty && name.utf8.count <= 64
            && name.unicodeScalars.allSatisfy {
                $0.isASCII && ($0.properties.isAlphabetic || "0123456789_-.".unicodeScalars.contains($0))
            }
        return plain ? "'\(name)'" : JSONText.quoted(String(name.prefix(64)))
    }
}
