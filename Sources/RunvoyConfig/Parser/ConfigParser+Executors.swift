import RunvoyKit
import Yams

/// `executors`: each executor's identity, timeouts, access and rules, and which one is the default. Its
/// environment is read in `ConfigParser+Environment.swift`, its command rules in `ConfigParser+Commands.swift`.
extension ConfigParser {
    /// The executors in file order; at least one is required.
    func parseExecutors(_ top: ConfigEntries, root: Node) -> [ExecutorConfig] {
        guard let node = top[ConfigSchema.TopKeys.executors] else {
            error(root, "executors", "at least one executor is required")
            return []
        }
        guard let mapping = node.mapping else {
            error(node, "executors", "expected a mapping of executor names to definitions")
            return []
        }
        var executors: [ExecutorConfig] = []
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                error(key, "executors", "executor names must be strings")
                continue
            }
            if let executor = parseExecutor(name: name, key: key, node: value) { executors.append(executor) }
        }
        if mapping.count == 0 { error(node, "executors", "at least one executor is required") }
        return executors
    }

    /// The executor marked `default: true`, or the only one; reports more than one default, or none of several.
    func defaultExecutorName(_ executors: [ExecutorConfig], _ top: ConfigEntries) -> String {
        let defaults = executors.filter(\.isDefault)
        if defaults.count > 1 {
            for extra in defaults.dropFirst() {
                report(
                    .error, nil, "executors.\(extra.name).default",
                    "only one executor may be the default; '\(defaults[0].name)' already is", line: extra.line)
            }
        } else if defaults.count == 1 {
            return defaults[0].name
        } else if executors.count > 1 {
            error(top[ConfigSchema.TopKeys.executors], "executors", "mark one executor with `default: true`")
        }
        return executors.first?.name ?? ""
    }

    private func parseExecutor(name: String, key: Node, node: Node) -> ExecutorConfig? {
        typealias Keys = ConfigSchema.ExecutorKeys
        let path = "executors.\(name)"
        if !Self.isValidExecutorName(name) {
            error(
                key, path,
                "executor names are 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit")
        }
        guard let entries = fields(node, path, Keys.section) else { return nil }
        let runAs = parseRunAs(entries, node)
        var commands: CommandRule?
        if let commandsNode = entries[Keys.commands] {
            commands = parseCommands(commandsNode, entries.path(Keys.commands))
        } else {
            error(
                node, entries.path(Keys.commands),
                "required: `any`, or a list of argv patterns such as [terraform, plan, \"*\"]")
        }
        var executor = ExecutorConfig(
            name: name, runAs: runAs ?? RunAs(user: "", group: nil), commands: commands ?? .patterns([]),
            line: key.mark?.line ?? 1)
        if let value = boolean(Keys.isDefault, in: entries) { executor.isDefault = value }
        executor.description = string(Keys.description, in: entries)
        parseEnvironment(entries, into: &executor)
        parseSecretFiles(entries, into: &executor)
        parseAllowEnv(entries, into: &executor)
        if let value = absolutePath(Keys.workingDirectory, in: entries) { executor.workingDirectory = value }
        parseTimeouts(entries, into: &executor)
        if let text = string(Keys.tty, in: entries) {
            if let policy = TerminalPolicy(rawValue: text) {
                executor.tty = policy
            } else {
                error(entries[Keys.tty], entries.path(Keys.tty), "must be allow, deny or require")
            }
        }
        if let value = boolean(Keys.recordInput, in: entries) { executor.recordInput = value }
        parseContainment(entries, into: &executor)
        parseEditable(entries, into: &executor)
        parseSandbox(entries, into: &executor)
        executor.concurrency = integer(Keys.concurrency, in: entries)
        parseLocks(entries, into: &executor)
        executor.execRate = rate(Keys.execRate, in: entries)
        if let node = entries[Keys.allow],
            let (users, groups, roles) = principals(node, entries.path(Keys.allow), ConfigSchema.AllowKeys.section)
        {
            executor.access = AccessList(users: users, groups: groups, roles: roles)
        }
        let approvalsOK = parseApprovalKeys(entries, into: &executor)
        executor.hooks = parseHooks(
            entries[Keys.hooks], entries.path(Keys.hooks), ConfigSchema.ExecutorHookKeys.section)
        return runAs == nil || commands == nil || !approvalsOK ? nil : executor
    }

    /// `run_as: {user, group}`: the user must be written, and both must exist.
    private func parseRunAs(_ entries: ConfigEntries, _ executorNode: Node) -> RunAs? {
        typealias Keys = ConfigSchema.RunAsKeys
        let key = ConfigSchema.ExecutorKeys.runAs
        guard let node = entries[key] else {
            error(executorNode, entries.path(key), "required: {user: NAME, group: NAME}")
            return nil
        }
        guard let runAs = fields(node, entries.path(key), Keys.section) else { return nil }
        if let user = account(Keys.user, in: runAs) {
            return RunAs(user: user, group: account(Keys.group, in: runAs))
        }
        if !runAs.contains(Keys.user) { error(node, runAs.path(Keys.user), "required: the user commands run as") }
        return nil
    }

    /// `editable`: absolute paths only.
    private func parseEditable(_ entries: ConfigEntries, into executor: inout ExecutorConfig) {
        let key = ConfigSchema.ExecutorKeys.editable
        guard let paths = strings(key, in: entries) else { return }
        for path in paths where !path.hasPrefix("/") {
            error(entries[key], entries.path(key), "'\(path)' is not an absolute path")
        }
        executor.editable = paths.filter { $0.hasPrefix("/") }
    }

    /// `timeout` and `max_timeout`; the one may not exceed the other.
    private func parseTimeouts(_ entries: ConfigEntries, into executor: inout ExecutorConfig) {
        typealias Keys = ConfigSchema.ExecutorKeys
        executor.defaultTimeout = duration(Keys.timeout, in: entries)
        executor.maxTimeout = duration(Keys.maxTimeout, in: entries)
        if let timeout = executor.defaultTimeout, let maximum = executor.maxTimeout, timeout > maximum {
            error(
                entries[Keys.timeout], entries.path(Keys.timeout),
                "\(DurationParser.format(timeout)) exceeds max_timeout \(DurationParser.format(maximum))")
        }
    }
}
