import RunvoyKit
import Yams

/// Walks the YAML node tree, so every diagnostic can name its line and key path, and collects all of them.
final class ConfigParser {
    let file: String
    let text: String
    private(set) var diagnostics: [ConfigDiagnostic] = []

    init(file: String, text: String) {
        self.file = file
        self.text = text
    }

    // MARK: - Diagnostics

    private func report(_ severity: ConfigDiagnostic.Severity, _ node: Node?, _ path: String, _ message: String) {
        diagnostics.append(
            ConfigDiagnostic(
                file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, keyPath: path,
                message: message, severity: severity))
    }

    private func error(_ node: Node?, _ path: String, _ message: String) { report(.error, node, path, message) }
    private func warning(_ node: Node?, _ path: String, _ message: String) { report(.warning, node, path, message) }

    // MARK: - Typed readers

    /// A mapping's entries by key, reporting a wrong type, non-string keys and unknown keys.
    private func fields(_ node: Node, _ path: String, allowed: [String]) -> [String: (key: Node, value: Node)]? {
        guard let mapping = node.mapping else {
            error(node, path, "expected a mapping of keys to values")
            return nil
        }
        var result: [String: (key: Node, value: Node)] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                error(key, path, "keys must be plain strings")
                continue
            }
            let keyPath = path.isEmpty ? name : "\(path).\(name)"
            guard allowed.contains(name) else {
                var message = "unknown key '\(name)'"
                if let suggestion = Self.closest(name, in: allowed) { message += " (did you mean '\(suggestion)'?)" }
                error(key, keyPath, message)
                continue
            }
            result[name] = (key, value)
        }
        return result
    }

    private func string(_ node: Node, _ path: String) -> String? {
        guard let scalar = node.scalar else {
            error(node, path, "expected a string")
            return nil
        }
        return scalar.string
    }

    /// A value that must be written as a string: numbers and booleans are refused rather than converted.
    private func strictString(_ node: Node, _ path: String) -> String? {
        guard let scalar = node.scalar else {
            error(node, path, "expected a string")
            return nil
        }
        if scalar.style == .plain {
            let kind: String? =
                node.bool != nil
                ? "boolean"
                : node.int != nil ? "number" : node.float != nil ? "number" : node.null != nil ? "null" : nil
            if let kind {
                error(node, path, "'\(scalar.string)' is read as a \(kind), not a string; quote it")
                return nil
            }
        }
        return scalar.string
    }

    private func int(_ node: Node, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard node.scalar != nil, let value = node.int else {
            error(node, path, "expected an integer")
            return nil
        }
        guard range.contains(value) else {
            error(node, path, "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    private func bool(_ node: Node, _ path: String) -> Bool? {
        guard node.scalar != nil, let value = node.bool else {
            error(node, path, "expected true or false")
            return nil
        }
        return value
    }

    private func duration(_ node: Node, _ path: String) -> Duration? {
        guard let text = node.scalar?.string, let value = DurationParser.parse(text) else {
            error(node, path, "expected a duration such as 30s, 5m, 1h30m or 250ms")
            return nil
        }
        return value
    }

    /// A byte count: an integer, or a number with a unit (`512KiB`, `64MiB`, `10GiB`, `1TiB`; `K`/`M`/`G`/`T`
    /// and `KB`/`MB`/`GB`/`TB` are read as the same binary units).
    private func size(_ node: Node, _ path: String, in range: ClosedRange<Int64>) -> Int64? {
        guard let text = node.scalar?.string, let value = Self.parseSize(text) else {
            error(node, path, "expected a size such as 64MiB, 10GiB or a number of bytes")
            return nil
        }
        guard range.contains(value) else {
            error(node, path, "\(value) bytes is outside \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    /// The `limits` keys on the size of a request's argv and environment.
    private func parseRequestLimits(_ entries: [String: (key: Node, value: Node)], into limits: inout Limits) {
        if let n = entries["max_arguments"].flatMap({ int($0.value, "limits.max_arguments", in: 1...1_000_000) }) {
            limits.maxArguments = n
        }
        let sizes: [(String, WritableKeyPath<Limits, Int>, ClosedRange<Int64>)] = [
            ("max_argument_bytes", \.maxArgumentBytes, 1...(64 << 20)),
            ("max_argv_bytes", \.maxArgvBytes, 1...(64 << 20)),
            ("max_env_bytes", \.maxEnvBytes, 0...(64 << 20)),
        ]
        for (key, field, range) in sizes {
            if let n = entries[key].flatMap({ size($0.value, "limits.\(key)", in: range) }) {
                limits[keyPath: field] = Int(n)
            }
        }
        if let n = entries["max_env_entries"].flatMap({ int($0.value, "limits.max_env_entries", in: 0...100_000) }) {
            limits.maxEnvEntries = n
        }
    }

    static func parseSize(_ text: String) -> Int64? {
        let units: [String: Int64] = [
            "": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
            "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
        ]
        let trimmed = text.filter { $0 != " " }
        let number = trimmed.prefix { $0.isNumber }
        guard !number.isEmpty, let value = Int64(number),
            let unit = units[trimmed.dropFirst(number.count).lowercased()]
        else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? nil : product
    }

    private func strings(_ node: Node, _ path: String) -> [String]? {
        guard let sequence = node.sequence else {
            error(node, path, "expected a list of strings")
            return nil
        }
        var out: [String] = []
        for (index, item) in sequence.enumerated() {
            guard let scalar = item.scalar else {
                error(item, "\(path)[\(index)]", "expected a string")
                continue
            }
            out.append(scalar.string)
        }
        return out
    }

    // MARK: - Document

    func parse() -> DaemonConfig? {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                error(nil, "", "the file is empty; at least one executor is required")
                return nil
            }
            root = node
        } catch let yamlError as YamlError {
            reportSyntax(yamlError)
            return nil
        } catch {
            self.error(nil, "", "cannot parse YAML: \(error)")
            return nil
        }
        let topKeys = [
            "socket", "state_directory", "admin_contact", "limits", "shutdown_grace", "kill_grace", "audit",
            "history", "secrets", "roles", "executors", "expect",
        ]
        guard let top = fields(root, "", allowed: topKeys) else { return nil }

        var socket = SocketSettings()
        if let node = top["socket"]?.value, let entries = fields(node, "socket", allowed: ["path", "mode", "group"]) {
            if let path = entries["path"].flatMap({ string($0.value, "socket.path") }) {
                if path.hasPrefix("/") {
                    socket.path = path
                } else {
                    error(entries["path"]?.value, "socket.path", "must be an absolute path")
                }
            }
            if let modeNode = entries["mode"]?.value, let text = string(modeNode, "socket.mode") {
                let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
                if let mode = UInt32(digits, radix: 8), mode <= 0o777 {
                    socket.mode = mode
                } else {
                    error(modeNode, "socket.mode", "expected octal permission bits such as \"0660\"")
                }
            }
            if let groupNode = entries["group"]?.value, let group = string(groupNode, "socket.group") {
                if SystemAccounts.groupExists(group) {
                    socket.group = group
                } else {
                    error(groupNode, "socket.group", "unknown group \"\(group)\"")
                }
            }
        }

        var stateDirectory = "/var/lib/runvoy"
        if let node = top["state_directory"]?.value, let value = string(node, "state_directory") {
            if value.hasPrefix("/") {
                stateDirectory = value
            } else {
                error(node, "state_directory", "must be an absolute path")
            }
        }
        let adminContact = top["admin_contact"].flatMap { string($0.value, "admin_contact") }

        var limits = Limits()
        if let node = top["limits"]?.value,
            let entries = fields(
                node, "limits",
                allowed: [
                    "max_frame_bytes", "idle_timeout", "max_connections", "max_executions", "max_arguments",
                    "max_argument_bytes", "max_argv_bytes", "max_env_entries", "max_env_bytes",
                ])
        {
            if let n = entries["max_frame_bytes"].flatMap({
                int($0.value, "limits.max_frame_bytes", in: 1024...(64 << 20))
            }) {
                limits.maxFrameBytes = n
            }
            if let d = entries["idle_timeout"].flatMap({ duration($0.value, "limits.idle_timeout") }) {
                if d > .zero {
                    limits.idleTimeout = d
                } else {
                    error(entries["idle_timeout"]?.value, "limits.idle_timeout", "must be positive")
                }
            }
            if let n = entries["max_connections"].flatMap({ int($0.value, "limits.max_connections", in: 1...1_000_000) }
            ) {
                limits.maxConnections = n
            }
            if let n = entries["max_executions"].flatMap({ int($0.value, "limits.max_executions", in: 1...100_000) }) {
                limits.maxExecutions = n
            }
            parseRequestLimits(entries, into: &limits)
        }
        let shutdownGrace = top["shutdown_grace"].flatMap { duration($0.value, "shutdown_grace") } ?? .seconds(30)
        let killGrace = top["kill_grace"].flatMap { duration($0.value, "kill_grace") } ?? .seconds(5)

        var audit = AuditSettings()
        if let node = top["audit"]?.value,
            let entries = fields(node, "audit", allowed: ["fail_closed", "write_timeout"])
        {
            if let value = entries["fail_closed"].flatMap({ bool($0.value, "audit.fail_closed") }) {
                audit.failClosed = value
            }
            if let node = entries["write_timeout"]?.value, let d = duration(node, "audit.write_timeout") {
                if d >= .milliseconds(10) && d <= .seconds(600) {
                    audit.writeTimeout = d
                } else {
                    error(node, "audit.write_timeout", "must be between 10ms and 10m")
                }
            }
        }

        var history = HistorySettings()
        if let node = top["history"]?.value,
            let entries = fields(
                node, "history",
                allowed: ["max_output_bytes", "max_age", "max_total_bytes", "prune_interval", "min_free_bytes"])
        {
            if let n = entries["max_output_bytes"].flatMap({
                size($0.value, "history.max_output_bytes", in: (64 << 10)...(1 << 40))
            }) {
                history.maxOutputBytes = n
            }
            if let node = entries["max_age"]?.value {
                if node.scalar?.string == "never" {
                    history.maxAge = nil
                } else if let d = duration(node, "history.max_age") {
                    if d > .zero {
                        history.maxAge = d
                    } else {
                        error(node, "history.max_age", "must be positive, or never")
                    }
                }
            }
            if let node = entries["max_total_bytes"]?.value {
                if node.scalar?.string == "unlimited" {
                    history.maxTotalBytes = nil
                } else if let n = size(node, "history.max_total_bytes", in: (1 << 20)...(1 << 50)) {
                    history.maxTotalBytes = n
                }
            }
            if let node = entries["prune_interval"]?.value, let d = duration(node, "history.prune_interval") {
                if d >= .seconds(1) {
                    history.pruneInterval = d
                } else {
                    error(node, "history.prune_interval", "must be at least 1s")
                }
            }
            if let n = entries["min_free_bytes"].flatMap({ size($0.value, "history.min_free_bytes", in: 0...(1 << 50)) }
            ) {
                history.minFreeBytes = n
            }
        }

        var secrets = SecretsSettings()
        if let node = top["secrets"]?.value,
            let entries = fields(
                node, "secrets", allowed: ["key_file", "runtime_directory", "min_length", "admin_read"])
        {
            for key in ["key_file", "runtime_directory"] {
                guard let valueNode = entries[key]?.value, let value = string(valueNode, "secrets.\(key)") else {
                    continue
                }
                guard value.hasPrefix("/") else {
                    error(valueNode, "secrets.\(key)", "must be an absolute path")
                    continue
                }
                if key == "key_file" { secrets.keyFile = value } else { secrets.runtimeDirectory = value }
            }
            if let n = entries["min_length"].flatMap({ int($0.value, "secrets.min_length", in: 1...4096) }) {
                secrets.minLength = n
            }
            if let value = entries["admin_read"].flatMap({ bool($0.value, "secrets.admin_read") }) {
                secrets.adminRead = value
            }
        }

        var roleBindings: [RoleBinding] = []
        if let node = top["roles"]?.value {
            if let mapping = node.mapping {
                for (key, value) in mapping {
                    guard let name = key.scalar?.string else {
                        error(key, "roles", "role names are strings")
                        continue
                    }
                    guard let role = Role(rawValue: name) else {
                        var message =
                            "unknown role '\(name)'; roles are \(Role.allCases.map(\.rawValue).joined(separator: ", "))"
                        if let suggestion = Self.closest(name, in: Role.allCases.map(\.rawValue)) {
                            message += " (did you mean '\(suggestion)'?)"
                        }
                        error(key, "roles", message)
                        continue
                    }
                    if let (users, groups, _) = principals(value, "roles.\(name)") {
                        roleBindings.append(
                            RoleBinding(role: role, users: users, groups: groups, line: key.mark?.line ?? 1))
                    }
                }
            } else {
                error(
                    node, "roles",
                    "expected a mapping of role names (admin, operator, developer, viewer) to {users, groups}")
            }
        }

        var expectations: [PolicyExpectation] = []
        if let node = top["expect"]?.value {
            if let sequence = node.sequence {
                for (index, item) in sequence.enumerated() {
                    if let expectation = parseExpectation(item, "expect[\(index)]") { expectations.append(expectation) }
                }
            } else {
                error(
                    node, "expect",
                    "expected a list such as [{user: alice, executor: deploy, argv: [terraform, apply], result: deny}]")
            }
        }

        var executors: [ExecutorConfig] = []
        if let entry = top["executors"] {
            if let mapping = entry.value.mapping {
                for (key, value) in mapping {
                    guard let name = key.scalar?.string else {
                        error(key, "executors", "executor names must be strings")
                        continue
                    }
                    if let executor = parseExecutor(name: name, key: key, node: value) { executors.append(executor) }
                }
                if mapping.count == 0 { error(entry.value, "executors", "at least one executor is required") }
            } else {
                error(entry.value, "executors", "expected a mapping of executor names to definitions")
            }
        } else {
            error(root, "executors", "at least one executor is required")
        }

        var defaultName = executors.first?.name ?? ""
        let defaults = executors.filter(\.isDefault)
        if defaults.count > 1 {
            for extra in defaults.dropFirst() {
                report(
                    .error, nil, "executors.\(extra.name).default",
                    "only one executor may be the default; '\(defaults[0].name)' already is")
                diagnostics[diagnostics.count - 1].line = extra.line
            }
        } else if defaults.count == 1 {
            defaultName = defaults[0].name
        } else if executors.count > 1 {
            error(top["executors"]?.value, "executors", "mark one executor with `default: true`")
        }

        var config = DaemonConfig(
            socket: socket, stateDirectory: stateDirectory, limits: limits, shutdownGrace: shutdownGrace,
            killGrace: killGrace, audit: audit, adminContact: adminContact, executors: executors,
            defaultExecutorName: defaultName, sourcePath: nil, digest: Self.digest(text),
            warnings: diagnostics.filter { $0.severity == .warning })
        config.history = history
        config.roles = roleBindings
        config.secrets = secrets
        config.expectations = expectations
        for expectation in expectations {
            if let name = expectation.executor, !executors.contains(where: { $0.name == name }) {
                report(.error, nil, "expect", "an expectation names executor '\(name)', which is not defined")
                diagnostics[diagnostics.count - 1].line = expectation.line
            }
        }
        return config
    }

    private func parseExecutor(name: String, key: Node, node: Node) -> ExecutorConfig? {
        let path = "executors.\(name)"
        if !Self.isValidExecutorName(name) {
            error(
                key, path,
                "executor names are 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit")
        }
        let allowed = [
            "default", "description", "run_as", "environment", "secret_files", "allow_env", "working_directory",
            "timeout", "max_timeout", "allow", "commands",
        ]
        guard let entries = fields(node, path, allowed: allowed) else { return nil }

        var runAs: RunAs?
        if let runAsNode = entries["run_as"]?.value {
            if let runAsFields = fields(runAsNode, "\(path).run_as", allowed: ["user", "group"]) {
                if let userNode = runAsFields["user"]?.value, let user = string(userNode, "\(path).run_as.user") {
                    if !SystemAccounts.userExists(user) {
                        error(userNode, "\(path).run_as.user", "unknown user \"\(user)\"")
                    }
                    var group: String?
                    if let groupNode = runAsFields["group"]?.value,
                        let value = string(groupNode, "\(path).run_as.group")
                    {
                        if !SystemAccounts.groupExists(value) {
                            error(groupNode, "\(path).run_as.group", "unknown group \"\(value)\"")
                        }
                        group = value
                    }
                    runAs = RunAs(user: user, group: group)
                } else if runAsFields["user"] == nil {
                    error(runAsNode, "\(path).run_as.user", "required: the user commands run as")
                }
            }
        } else {
            error(node, "\(path).run_as", "required: {user: NAME, group: NAME}")
        }

        var commands: CommandRule?
        if let commandsNode = entries["commands"]?.value {
            commands = parseCommands(commandsNode, "\(path).commands")
        } else {
            error(
                node, "\(path).commands", "required: `any`, or a list of argv patterns such as [terraform, plan, \"*\"]"
            )
        }

        var executor = ExecutorConfig(
            name: name, runAs: runAs ?? RunAs(user: "", group: nil), commands: commands ?? .patterns([]),
            line: key.mark?.line ?? 1)
        if let value = entries["default"].flatMap({ bool($0.value, "\(path).default") }) { executor.isDefault = value }
        executor.description = entries["description"].flatMap { string($0.value, "\(path).description") }
        if let envNode = entries["environment"]?.value {
            if let mapping = envNode.mapping {
                for (envKey, envValue) in mapping {
                    guard let envName = envKey.scalar?.string, Self.isValidEnvName(envName) else {
                        error(
                            envKey, "\(path).environment",
                            "environment names are letters, digits and '_', not starting with a digit")
                        continue
                    }
                    if envValue.mapping != nil {
                        if let secret = secretReference(envValue, "\(path).environment.\(envName)") {
                            executor.secretEnvironment[envName] = secret
                        }
                    } else if let value = strictString(envValue, "\(path).environment.\(envName)") {
                        executor.environment[envName] = value
                    }
                }
            } else {
                error(envNode, "\(path).environment", "expected a mapping of NAME: value")
            }
        }
        if let filesNode = entries["secret_files"]?.value {
            if let mapping = filesNode.mapping {
                for (envKey, envValue) in mapping {
                    guard let envName = envKey.scalar?.string, Self.isValidEnvName(envName) else {
                        error(
                            envKey, "\(path).secret_files",
                            "environment names are letters, digits and '_', not starting with a digit")
                        continue
                    }
                    if executor.environment[envName] != nil || executor.secretEnvironment[envName] != nil {
                        error(envKey, "\(path).secret_files.\(envName)", "\(envName) is already set in environment")
                        continue
                    }
                    if let secret = secretReference(envValue, "\(path).secret_files.\(envName)") {
                        executor.secretFiles[envName] = secret
                    }
                }
            } else {
                error(filesNode, "\(path).secret_files", "expected a mapping of NAME: {secret: SECRET}")
            }
        }
        if let listNode = entries["allow_env"]?.value, let names = strings(listNode, "\(path).allow_env") {
            for (index, entry) in names.enumerated() {
                let base = entry.hasSuffix("*") ? String(entry.dropLast()) : entry
                if (!base.isEmpty || !entry.hasSuffix("*")) && !Self.isValidEnvName(base)
                    && !(entry.hasSuffix("*") && base.isEmpty)
                {
                    error(
                        listNode.sequence?[index], "\(path).allow_env[\(index)]",
                        "'\(entry)' is not an environment name or prefix*")
                }
            }
            executor.allowEnv = names
        }
        if let cwdNode = entries["working_directory"]?.value, let cwd = string(cwdNode, "\(path).working_directory") {
            if cwd.hasPrefix("/") {
                executor.workingDirectory = cwd
            } else {
                error(cwdNode, "\(path).working_directory", "must be an absolute path")
            }
        }
        executor.defaultTimeout = entries["timeout"].flatMap { duration($0.value, "\(path).timeout") }
        executor.maxTimeout = entries["max_timeout"].flatMap { duration($0.value, "\(path).max_timeout") }
        if let timeout = executor.defaultTimeout, let maximum = executor.maxTimeout, timeout > maximum {
            error(
                entries["timeout"]?.value, "\(path).timeout",
                "\(DurationParser.format(timeout)) exceeds max_timeout \(DurationParser.format(maximum))")
        }
        if let allowNode = entries["allow"]?.value,
            let (users, groups, roles) = principals(allowNode, "\(path).allow", withRoles: true)
        {
            executor.access = AccessList(users: users, groups: groups, roles: roles)
        }
        return runAs == nil || commands == nil ? nil : executor
    }

    /// `{users: [...], groups: [...]}` (and `roles: [...]` where allowed), with existence warnings.
    private func principals(
        _ node: Node, _ path: String, withRoles: Bool = false
    ) -> (users: [String], groups: [String], roles: [Role])? {
        let allowed = withRoles ? ["users", "groups", "roles"] : ["users", "groups"]
        guard let entries = fields(node, path, allowed: allowed) else { return nil }
        var result: (users: [String], groups: [String], roles: [Role]) = ([], [], [])
        if let usersNode = entries["users"]?.value, let users = strings(usersNode, "\(path).users") {
            for (index, user) in users.enumerated() where user != "*" && !SystemAccounts.userExists(user) {
                warning(usersNode.sequence?[index], "\(path).users[\(index)]", "no user \"\(user)\" exists (yet)")
            }
            result.users = users
        }
        if let groupsNode = entries["groups"]?.value, let groups = strings(groupsNode, "\(path).groups") {
            for (index, group) in groups.enumerated() where !SystemAccounts.groupExists(group) {
                warning(groupsNode.sequence?[index], "\(path).groups[\(index)]", "no group \"\(group)\" exists (yet)")
            }
            result.groups = groups
        }
        if let rolesNode = entries["roles"]?.value, let names = strings(rolesNode, "\(path).roles") {
            for (index, name) in names.enumerated() {
                if let role = Role(rawValue: name) {
                    result.roles.append(role)
                } else {
                    error(
                        rolesNode.sequence?[index], "\(path).roles[\(index)]",
                        "unknown role '\(name)'; roles are \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
        }
        return result
    }

    /// `{secret: NAME}`: a reference to a secret in the store.
    private func secretReference(_ node: Node, _ path: String) -> String? {
        guard let entries = fields(node, path, allowed: ["secret"]) else { return nil }
        guard let nameNode = entries["secret"]?.value, let name = string(nameNode, "\(path).secret") else {
            error(node, "\(path).secret", "required: the secret's name, as in {secret: aws-prod-key}")
            return nil
        }
        guard SecretName.isValid(name) else {
            error(
                nameNode, "\(path).secret",
                "secret names are 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
            return nil
        }
        return name
    }

    private func parseExpectation(_ node: Node, _ path: String) -> PolicyExpectation? {
        guard let entries = fields(node, path, allowed: ["user", "executor", "argv", "result"]) else { return nil }
        guard let userNode = entries["user"]?.value, let user = string(userNode, "\(path).user") else {
            error(node, "\(path).user", "required: the user the expectation is about")
            return nil
        }
        let executor = entries["executor"].flatMap { string($0.value, "\(path).executor") }
        guard let argvNode = entries["argv"]?.value, let argv = strings(argvNode, "\(path).argv"), !argv.isEmpty else {
            error(node, "\(path).argv", "required: the command as a list, e.g. [terraform, apply]")
            return nil
        }
        guard let resultNode = entries["result"]?.value, let result = string(resultNode, "\(path).result"),
            result == "allow" || result == "deny"
        else {
            error(entries["result"]?.value ?? node, "\(path).result", "required: allow or deny")
            return nil
        }
        return PolicyExpectation(
            user: user, executor: executor, argv: argv, allow: result == "allow", line: node.mark?.line ?? 1)
    }

    private static let patternHelp =
        "each rule is `any`, a list of arguments such as [systemctl, restart, nginx], or {allow: RULE} / {deny: RULE}"

    private func parseCommands(_ node: Node, _ path: String) -> CommandRule? {
        if let scalar = node.scalar {
            if scalar.string == "any" { return .any }
            error(node, path, "expected `any` or a list of rules")
            return nil
        }
        guard let sequence = node.sequence else {
            error(node, path, "expected `any` or a list of rules")
            return nil
        }
        var patterns: [ArgvPattern] = []
        var ok = true
        for (index, item) in sequence.enumerated() {
            let itemPath = "\(path)[\(index)]"
            var effect = ArgvPattern.Effect.allow
            var body = item
            if let mapping = item.mapping {
                guard mapping.count == 1, let key = mapping.first?.key.scalar?.string,
                    let kind = ArgvPattern.Effect(rawValue: key), let value = mapping.first?.value
                else {
                    error(item, itemPath, Self.patternHelp)
                    ok = false
                    continue
                }
                effect = kind
                body = value
            }
            let line = item.mark?.line ?? 1
            if body.scalar?.string == "any" {
                patterns.append(.any(effect: effect, line: line))
                continue
            }
            guard let elements = body.sequence, elements.count > 0 else {
                error(item, itemPath, Self.patternHelp)
                ok = false
                continue
            }
            var matchers: [ArgumentMatcher] = []
            var trailing = false
            for (position, element) in elements.enumerated() {
                let elementPath = "\(itemPath)[\(position)]"
                if let word = element.scalar?.string, word == "*" {
                    if position != elements.count - 1 {
                        error(element, itemPath, "\"*\" is only allowed as the last element (any remaining arguments)")
                        ok = false
                    } else if position == 0 {
                        error(element, itemPath, "a rule must name its command before \"*\" (or be `any`)")
                        ok = false
                    } else {
                        trailing = true
                    }
                    continue
                }
                if let matcher = parseMatcher(element, elementPath) {
                    matchers.append(matcher)
                } else {
                    ok = false
                }
            }
            patterns.append(
                ArgvPattern(elements: matchers, allowsTrailingArguments: trailing, effect: effect, line: line))
        }
        return ok ? .patterns(patterns) : nil
    }

    /// One argument of a rule: a string, a list of alternatives, `{regex: RE}` or `{path_under: DIR}`.
    private func parseMatcher(_ node: Node, _ path: String) -> ArgumentMatcher? {
        if let scalar = node.scalar { return .literal(scalar.string) }
        if let sequence = node.sequence {
            let words = sequence.compactMap { $0.scalar?.string }
            guard words.count == sequence.count, !words.isEmpty else {
                error(node, path, "alternatives are a non-empty list of strings, e.g. [plan, apply]")
                return nil
            }
            return .oneOf(words)
        }
        if let mapping = node.mapping, mapping.count == 1, let key = mapping.first?.key.scalar?.string,
            let value = mapping.first?.value.scalar?.string
        {
            switch key {
            case "regex":
                do {
                    _ = try Regex(value)
                } catch {
                    self.error(node, path, "not a valid regular expression: \(error)")
                    return nil
                }
                return .regex(value)
            case "path_under":
                guard value.hasPrefix("/") else {
                    error(node, path, "path_under needs an absolute directory")
                    return nil
                }
                return .pathUnder(value)
            default:
                break
            }
        }
        error(node, path, "an argument is a string, a list of alternatives, {regex: RE} or {path_under: DIR}")
        return nil
    }

    private func reportSyntax(_ yamlError: YamlError) {
        switch yamlError {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            diagnostics.append(
                ConfigDiagnostic(
                    file: file, line: mark.line, column: mark.column, keyPath: "", message: "YAML syntax: \(problem)",
                    severity: .error))
        case .duplicatedKeysInMapping(let duplicates, let context):
            diagnostics.append(
                ConfigDiagnostic(
                    file: file, line: context.mark.line, column: context.mark.column, keyPath: "",
                    message:
                        "duplicate key\(duplicates.count > 1 ? "s" : "") \(duplicates.map { "'\($0)'" }.joined(separator: ", "))",
                    severity: .error))
        default:
            error(nil, "", "cannot parse YAML: \(yamlError)")
        }
    }

    // MARK: - Helpers

    static func isValidExecutorName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func lowerOrDigit(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        return lowerOrDigit(bytes[0]) && bytes.allSatisfy { lowerOrDigit($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }
    }

    static func isValidEnvName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return bytes.allSatisfy {
            ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F
        }
    }

    /// The allowed key nearest to a misspelt one, if it is close enough to be a likely typo.
    static func closest(_ word: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word, $0)) }.min { $0.1 < $1.1 }
        guard let (candidate, distance) = scored, distance <= max(2, word.count / 3) else { return nil }
        return candidate
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// 64-bit FNV-1a of the source text.
    static func digest(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
