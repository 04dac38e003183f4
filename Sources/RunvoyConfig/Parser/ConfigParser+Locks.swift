import Yams

/// `executors.NAME.locks`: the named locks an executor's executions hold, each a name (exclusive) or
/// `{name: NAME, shared: BOOL}`.
extension ConfigParser {
    /// Reads the list into `executor.locks`.
    func parseLocks(_ entries: ConfigEntries, into executor: inout ExecutorConfig) {
        if let locks = locks(ConfigSchema.ExecutorKeys.locks, in: entries) { executor.locks = locks }
    }

    /// The locks `key` lists (an executor's or a playbook's), sorted by name (the order the daemon takes them in).
    /// A name written twice with the same mode is a warning; with both modes, an error.
    func locks(_ key: ConfigKey, in entries: ConfigEntries) -> [ExecutorLock]? {
        guard case .locks = key.type else { preconditionFailure("\(key.name) is not a list of locks") }
        guard let node = entries[key] else { return nil }
        let path = entries.path(key)
        guard let sequence = node.sequence else {
            error(node, path, "expected a list of lock names, each NAME or {name: NAME, shared: true}")
            return nil
        }
        var claims: [ExecutorLock] = []
        for (index, item) in sequence.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let claim = parseLock(item, itemPath) else { continue }
            if let earlier = claims.first(where: { $0.name == claim.name }) {
                if earlier.shared == claim.shared {
                    warning(item, itemPath, "lock '\(claim.name)' is listed twice")
                } else {
                    error(
                        item, itemPath,
                        "lock '\(claim.name)' is listed both shared and exclusive; an execution holds a lock one way")
                }
                continue
            }
            claims.append(claim)
        }
        return claims.sorted { $0.name < $1.name }
    }

    private func parseLock(_ node: Node, _ path: String) -> ExecutorLock? {
        typealias Keys = ConfigSchema.LockKeys
        if node.scalar != nil {
            guard let name = lockName(node, path) else { return nil }
            return ExecutorLock(name: name, shared: false)
        }
        guard node.mapping != nil else {
            error(node, path, "a lock is a name, or {name: NAME, shared: true}")
            return nil
        }
        guard let fields = fields(node, path, Keys.section) else { return nil }
        guard let nameNode = fields[Keys.name] else {
            error(node, fields.path(Keys.name), "required: the lock's name")
            return nil
        }
        let shared = boolean(Keys.shared, in: fields) ?? false
        guard let name = lockName(nameNode, fields.path(Keys.name)) else { return nil }
        return ExecutorLock(name: name, shared: shared)
    }

    /// A lock's name, spelt like an executor's.
    private func lockName(_ node: Node, _ path: String) -> String? {
        guard let name = strictString(node, path) else { return nil }
        guard Self.isValidExecutorName(name) else {
            error(
                node, path,
                "lock names are 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit; got '\(name.prefix(80))'"
            )
            return nil
        }
        return name
    }
}
