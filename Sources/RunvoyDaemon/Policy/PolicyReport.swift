import RunvoyConfig
import RunvoyKit

/// What a configuration grants, in a form that can be digested, compared between reloads and checked against
/// the configuration's own expectations.
enum PolicyReport {
    /// A stable digest of the effective policy: role bindings, and each executor's identity, access, command
    /// rules, PATH, `allow_env`, secrets and working directory (comments, key order and unrelated settings do
    /// not change it).
    static func digest(_ config: DaemonConfig) -> String {
        var lines: [String] = []
        for binding in config.roles.sorted(by: { ($0.role, $0.line) < ($1.role, $1.line) }) {
            lines.append(
                "role \(binding.role.rawValue) users=\(binding.users.sorted()) groups=\(binding.groups.sorted())")
        }
        for executor in config.executors.sorted(by: { $0.name < $1.name }) {
            let access = executor.access
            lines.append(
                "executor \(executor.name) run_as=\(executor.runAs.user):\(executor.runAs.group ?? "") "
                    + "users=\(access.users.sorted()) groups=\(access.groups.sorted()) "
                    + "roles=\(access.roles.map(\.rawValue).sorted()) "
                    // What a caller can change about a command, and what it is given, are part of the policy.
                    + "path=\(executor.environment["PATH"] ?? "") allow_env=\(executor.allowEnv.sorted()) "
                    + "secrets=\(executor.secretNames.sorted()) cwd=\(executor.workingDirectory)")
            for rule in executor.commands.rules { lines.append("  \(rule.display)") }
        }
        return ConfigLoader.digest(lines.joined(separator: "\n"))
    }

    /// Each user's grants: `executor: rule` for every rule of every executor the user may run commands on.
    /// Users are those of the user database who hold a role (or root).
    static func grants(_ config: DaemonConfig, users: [String]) -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        for name in users {
            guard let caller = Caller.lookup(userName: name) else { continue }
            result.merge(grants(config, of: caller, as: name)) { $1 }
        }
        return result
    }

    /// The grants of `caller` (as the daemon knows it: by uid, with its temporary grants), under `name`.
    static func grants(_ config: DaemonConfig, of caller: Caller, as name: String) -> [String: Set<String>] {
        var grants = Set<String>()
        for executor in config.executors where Authorizer.mayUse(caller, executor, config) {
            for rule in executor.commands.rules { grants.insert("\(executor.name): \(rule.display)") }
        }
        return grants.isEmpty ? [:] : [name: grants]
    }

    /// Grants gained and lost between two configurations, per user (users with no change are left out).
    static func diff(
        from old: [String: Set<String>], to new: [String: Set<String>]
    ) -> (gained: [String: [String]], lost: [String: [String]]) {
        var gained: [String: [String]] = [:]
        var lost: [String: [String]] = [:]
        for user in Set(old.keys).union(new.keys) {
            let before = old[user] ?? []
            let after = new[user] ?? []
            let plus = after.subtracting(before)
            let minus = before.subtracting(after)
            if !plus.isEmpty { gained[user] = plus.sorted() }
            if !minus.isEmpty { lost[user] = minus.sorted() }
        }
        return (gained, lost)
    }

    /// `{"alice":["deploy: terraform *"]}` with sorted keys.
    static func json(_ grants: [String: [String]]) -> String {
        "{"
            + grants.keys.sorted().map { user in
                JSONText.quoted(user) + ":" + JSONText.array(grants[user] ?? [])
            }.joined(separator: ",") + "}"
    }

    /// The expectations (`expect:`) that do not hold, each as a diagnostic with the expectation's line.
    static func failedExpectations(_ config: DaemonConfig) -> [ConfigDiagnostic] {
        config.expectations.compactMap { expectation in
            let file = config.sourcePath ?? "(embedded configuration)"
            func failure(_ message: String) -> ConfigDiagnostic {
                ConfigDiagnostic(
                    file: file, line: expectation.line, column: 1, keyPath: "expect", message: message,
                    severity: .error)
            }
            let executorName = expectation.executor ?? config.defaultExecutorName
            let what =
                "user \(expectation.user) on '\(executorName)' \(JSONText.array(expectation.argv))"
            guard let caller = Caller.lookup(userName: expectation.user) else {
                return failure("\(what): there is no user \(expectation.user)")
            }
            guard let executor = config.executor(named: executorName) else {
                return failure("\(what): there is no executor \(executorName)")
            }
            let decision = Authorizer.decide(caller: caller, executor: executor, argv: expectation.argv, config: config)
            guard decision.allowed != expectation.allow else { return nil }
            return failure(
                "\(what): expected \(expectation.allow ? "allow" : "deny"), got \(decision.allowed ? "allow" : "deny") (\(decision.reason))"
            )
        }
    }

    /// Users whose grants are worth reporting: root and everyone a role binding could name.
    static func knownUsers(_ config: DaemonConfig) -> [String] {
        UserDatabase.allUserNames().filter { name in
            guard let caller = Caller.lookup(userName: name) else { return false }
            return !Authorizer.roles(caller, config).isEmpty
        }
    }
}
