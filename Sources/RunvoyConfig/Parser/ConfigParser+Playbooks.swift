import RunvoyKit
import Yams

/// A playbook file, `playbooks/NAME.yaml`: its description, access, locks, approval and schedule here; its
/// parameters in `ConfigParser+PlaybookParameters.swift`, its steps in `ConfigParser+PlaybookSteps.swift`. `access`,
/// `locks` and `approval` are read as an executor's keys of the same name are.
extension ConfigParser {
    /// The playbook `name` of this parser's file, checked against `config` (its executors); nil when the file has
    /// an error (all of them reported).
    func parsePlaybook(name: String, in config: DaemonConfig) -> PlaybookConfig? {
        typealias Keys = ConfigSchema.PlaybookKeys
        guard let root = composeDocument(empty: "the file is empty; a playbook needs at least one step"),
            let top = fields(root, "", Keys.section)
        else { return nil }
        if !Self.isValidExecutorName(name) {
            error(
                nil, "",
                "playbook names (the file name without .yaml) are 1-64 characters of a-z, 0-9, '_', '.', '-', "
                    + "starting with a letter or digit")
        }
        let parameters = parsePlaybookParameters(top)
        let steps = parsePlaybookSteps(top, root: root, parameters: parameters, config: config)
        var playbook = PlaybookConfig(name: name, steps: steps, file: file, line: root.mark?.line ?? 1)
        playbook.parameters = parameters
        playbook.description = string(Keys.description, in: top)
        if let node = top[Keys.access],
            let (users, groups, roles) = principals(node, top.path(Keys.access), ConfigSchema.AllowKeys.section)
        {
            playbook.access = AccessList(users: users, groups: groups, roles: roles)
        }
        playbook.locks = locks(Keys.locks, in: top) ?? []
        if let node = top[Keys.approval], let policy = parseApproval(node, top.path(Keys.approval)) {
            playbook.approval = policy.requiresApproval ? policy : nil
        }
        if let node = top[Keys.schedule] {
            playbook.schedule = parsePlaybookSchedule(node, top.path(Keys.schedule), playbook)
        }
        return diagnostics.contains { $0.severity == .error } ? nil : playbook
    }

    /// `schedule: {calendar, run_as_caller, params}`: the calendar as systemd reads it, a user name spelt as one
    /// (whether the user exists is decided when the timer fires), and parameters that bind.
    private func parsePlaybookSchedule(_ node: Node, _ path: String, _ playbook: PlaybookConfig) -> PlaybookSchedule? {
        typealias Keys = ConfigSchema.PlaybookScheduleKeys
        guard let entries = fields(node, path, Keys.section) else { return nil }
        for key in [Keys.calendar, Keys.runAsCaller] where !entries.contains(key) {
            error(node, entries.path(key), "required: \(key.doc)")
        }
        var ok = true
        let calendar = entries[Keys.calendar].flatMap { strictString($0, entries.path(Keys.calendar)) }
        if let calendar, let problem = PlaybookCalendar.problem(calendar) {
            error(entries[Keys.calendar], entries.path(Keys.calendar), problem)
            ok = false
        }
        let user = entries[Keys.runAsCaller].flatMap { strictString($0, entries.path(Keys.runAsCaller)) }
        if let user, !Self.isValidUserName(user) {
            error(
                entries[Keys.runAsCaller], entries.path(Keys.runAsCaller),
                "not a user name: 1-32 characters of letters, digits, '_', '.', '-', starting with a letter or '_'")
            ok = false
        }
        let params = stringMap(Keys.params, in: entries) ?? [:]
        for problem in playbook.bind(params).problems {
            error(entries[Keys.params] ?? node, entries.path(Keys.params), problem)
            ok = false
        }
        guard ok, let calendar, let user else { return nil }
        return PlaybookSchedule(calendar: calendar, runAsCaller: user, params: params, line: node.mark?.line ?? 1)
    }

    /// A user name as `useradd` spells one by default, with capitals and dots allowed (and a final `$`).
    static func isValidUserName(_ name: String) -> Bool {
        var bytes = Array(name.utf8)
        if bytes.last == UInt8(ascii: "$") { bytes.removeLast() }
        guard (1...32).contains(bytes.count) else { return false }
        func letter(_ b: UInt8) -> Bool { (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x5F }
        return letter(bytes[0])
            && bytes.allSatisfy { letter($0) || (0x30...0x39).contains($0) || $0 == 0x2E || $0 == 0x2D }
    }

    /// A mapping of names to scalar values, each taken as its text.
    func stringMap(_ key: ConfigKey, in entries: ConfigEntries) -> [String: String]? {
        guard case .stringMap = key.type else { preconditionFailure("\(key.name) is not a mapping of strings") }
        guard let node = entries[key] else { return nil }
        guard let mapping = node.mapping else {
            error(node, entries.path(key), "expected a mapping of names to values")
            return nil
        }
        var out: [String: String] = [:]
        for (name, value) in mapping {
            guard let name = name.scalar?.string else {
                error(name, entries.path(key), "names must be plain strings")
                continue
            }
            guard let text = value.scalar?.string else {
                error(value, "\(entries.path(key)).\(name)", "expected a value written as a scalar")
                continue
            }
            out[name] = text
        }
        return out
    }
}
