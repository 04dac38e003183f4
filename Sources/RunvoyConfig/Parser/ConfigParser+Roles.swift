import Yams

/// `roles`: which users and groups hold each role; and the `{users, groups, roles}` lists that bind roles and
/// admit callers to executors.
extension ConfigParser {
    func parseRoles(_ top: ConfigEntries) -> [RoleBinding] {
        guard let node = top[ConfigSchema.TopKeys.roles] else { return [] }
        guard let mapping = node.mapping else {
            error(
                node, "roles",
                "expected a mapping of role names (admin, operator, developer, viewer) to {users, groups}")
            return []
        }
        var bindings: [RoleBinding] = []
        for (key, value) in mapping {
            guard let role = role(named: key) else { continue }
            if let (users, groups, _) = principals(value, "roles.\(role.rawValue)", ConfigSchema.RoleKeys.section) {
                bindings.append(RoleBinding(role: role, users: users, groups: groups, line: key.mark?.line ?? 1))
            }
        }
        return bindings
    }

    /// The role a key of `roles` names, or nil (reported).
    private func role(named key: Node) -> Role? {
        guard let name = key.scalar?.string else {
            error(key, "roles", "role names are strings")
            return nil
        }
        guard let role = Role(rawValue: name) else {
            var message = "unknown role '\(name)'; roles are \(Role.allCases.map(\.rawValue).joined(separator: ", "))"
            if let suggestion = Self.closest(name, in: Role.allCases.map(\.rawValue)) {
                message += " (did you mean '\(suggestion)'?)"
            }
            error(key, "roles", message)
            return nil
        }
        return role
    }

    /// `{users: [...], groups: [...]}` (and `roles: [...]` where `section` declares it), with existence warnings.
    func principals(
        _ node: Node, _ path: String, _ section: ConfigSection
    ) -> (users: [String], groups: [String], roles: [Role])? {
        // `AllowKeys` names the keys of both sections: a role binding declares `users` and `groups` only, so
        // `fields` refuses `roles` there before it is read.
        typealias Keys = ConfigSchema.AllowKeys
        guard let entries = fields(node, path, section) else { return nil }
        var result: (users: [String], groups: [String], roles: [Role]) = ([], [], [])
        if let users = strings(Keys.users, in: entries) {
            for (index, user) in users.enumerated() where user != "*" && !SystemAccounts.userExists(user) {
                warning(
                    entries[Keys.users]?.sequence?[index], "\(path).users[\(index)]", "no user \"\(user)\" exists (yet)"
                )
            }
            result.users = users
        }
        if let groups = strings(Keys.groups, in: entries) {
            for (index, group) in groups.enumerated() where !SystemAccounts.groupExists(group) {
                warning(
                    entries[Keys.groups]?.sequence?[index], "\(path).groups[\(index)]",
                    "no group \"\(group)\" exists (yet)")
            }
            result.groups = groups
        }
        if let names = strings(Keys.roles, in: entries) {
            result.roles = roles(names, entries[Keys.roles], "\(path).roles")
        }
        return result
    }

    /// The roles a list names, reporting each unknown one at its place.
    func roles(_ names: [String], _ node: Node?, _ path: String) -> [Role] {
        var roles: [Role] = []
        for (index, name) in names.enumerated() {
            if let role = Role(rawValue: name) {
                roles.append(role)
            } else {
                error(
                    node?.sequence?[index], "\(path)[\(index)]",
                    "unknown role '\(name)'; roles are \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        return roles
    }
}
