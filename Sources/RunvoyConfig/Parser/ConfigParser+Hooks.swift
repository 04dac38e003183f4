import RunvoyKit
import Yams

/// `hooks` and `executors.NAME.hooks`: commands run at points of an execution's life, each
/// `{name, event, command, user, group, timeout, on_error}`.
extension ConfigParser {
    /// The hooks of the list `node` holds (none when it is not written), in file order.
    func parseHooks(_ node: Node?, _ path: String, _ section: ConfigSection) -> [HookConfig] {
        guard let node else { return [] }
        guard let sequence = node.sequence else {
            error(node, path, "expected a list of hooks, each {name, event, command, user}")
            return []
        }
        var hooks: [HookConfig] = []
        for (index, item) in sequence.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let hook = parseHook(item, itemPath, section) else { continue }
            if hooks.contains(where: { $0.name == hook.name }) {
                error(item, "\(itemPath).name", "a hook named '\(hook.name)' is already in this list")
                continue
            }
            hooks.append(hook)
        }
        return hooks
    }

    /// Warns of `editable` on an executor with `pre_exec` hooks (its own or global): edits do not run them, so
    /// runvoyd refuses every edit there (review of hooks, H1).
    func checkHookEdits(_ executors: [ExecutorConfig], _ global: [HookConfig]) {
        for executor in executors where !executor.editable.isEmpty {
            guard (global + executor.hooks).contains(where: { $0.event == .preExec }) else { continue }
            report(
                .warning, nil, "executors.\(executor.name).editable",
                "this executor has pre_exec hooks, and edits do not run them: runvoyd refuses every edit on it",
                line: executor.line)
        }
    }

    private func parseHook(_ node: Node, _ path: String, _ section: ConfigSection) -> HookConfig? {
        guard let entries = fields(node, path, section) else { return nil }
        func key(_ name: String) -> ConfigKey {
            guard let key = section.keys.first(where: { $0.name == name }) else { preconditionFailure(name) }
            return key
        }
        let name = hookName(entries, key("name"), node)
        let event = hookEvent(entries, key("event"), node)
        let command = hookCommand(entries, key("command"), node)
        let user = account(key("user"), in: entries)
        if user == nil && !entries.contains(key("user")) {
            error(node, entries.path(key("user")), "required: the user the hook runs as")
        }
        let group = account(key("group"), in: entries)
        let timeout = duration(key("timeout"), in: entries)
        let onError = hookErrorPolicy(entries, key("on_error"))
        guard let name, let event, let command, let user, onError != .some(nil),
            timeout != nil || !entries.contains(key("timeout"))
        else { return nil }
        var hook = HookConfig(name: name, event: event, command: command, user: user, line: node.mark?.line ?? 1)
        hook.group = group
        hook.timeout = timeout ?? HookConfig.defaultTimeout
        hook.onErrorWritten = onError ?? nil
        if user == "root" {
            warning(node, entries.path(key("user")), "the hook runs as root: give it a user of its own if you can")
        }
        return hook
    }

    private func hookName(_ entries: ConfigEntries, _ key: ConfigKey, _ node: Node) -> String? {
        guard let name = string(key, in: entries) else {
            if !entries.contains(key) { error(node, entries.path(key), "required: the hook's name") }
            return nil
        }
        guard Self.isValidExecutorName(name) else {
            error(
                entries[key], entries.path(key),
                "hook names are 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit")
            return nil
        }
        return name
    }

    private func hookEvent(_ entries: ConfigEntries, _ key: ConfigKey, _ node: Node) -> HookEvent? {
        guard let text = string(key, in: entries) else {
            if !entries.contains(key) { error(node, entries.path(key), "required: the event the hook runs at") }
            return nil
        }
        guard let event = HookEvent(rawValue: text) else {
            let names = HookEvent.allCases.map(\.rawValue).joined(separator: ", ")
            error(entries[key], entries.path(key), "must be one of \(names)")
            return nil
        }
        return event
    }

    private func hookCommand(_ entries: ConfigEntries, _ key: ConfigKey, _ node: Node) -> [String]? {
        guard let command = strings(key, in: entries) else {
            if !entries.contains(key) { error(node, entries.path(key), "required: the hook's argv, as a list") }
            return nil
        }
        guard command.first?.hasPrefix("/") == true else {
            error(entries[key], entries.path(key), "the first element must be an absolute path to the program")
            return nil
        }
        if command.contains(where: { $0.utf8.contains(0) }) {
            error(entries[key], entries.path(key), "arguments may not contain NUL")
            return nil
        }
        return command
    }

    /// nil when not written; `.some(nil)` when written wrong (reported).
    private func hookErrorPolicy(_ entries: ConfigEntries, _ key: ConfigKey) -> HookErrorPolicy?? {
        guard entries.contains(key) else { return nil }
        guard let text = string(key, in: entries), let policy = HookErrorPolicy(rawValue: text) else {
            if entries[key]?.scalar != nil { error(entries[key], entries.path(key), "must be deny or allow") }
            return .some(nil)
        }
        return .some(policy)
    }
}
