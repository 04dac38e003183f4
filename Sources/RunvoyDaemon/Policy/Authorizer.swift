import RunvoyConfig
import RunvoyKit

/// The one place that decides what a caller may do: its roles (from the `roles` bindings; root is always
/// admin), the permission table (`PermissionTable`), executor access and command rules.
enum Authorizer {
    /// An allow or deny with the reason the audit trail records and the rule that decided, if one did.
    struct Decision: Sendable, Equatable {
        var allowed: Bool
        var reason: String
        /// The wire error for a denial.
        var error: RunvoyError?
        /// `FILE:LINE` of the command rule that decided; nil when no rule did (no role, no access, no match).
        var rule: String?
        /// For an allow: the approvals the command needs before it runs (the rule's own, else the executor's);
        /// nil when it needs none.
        var approval: ApprovalPolicy?

        static func allow(_ reason: String, rule: String?, approval: ApprovalPolicy? = nil) -> Decision {
            Decision(
                allowed: true, reason: reason, error: nil, rule: rule,
                approval: approval?.requiresApproval == true ? approval : nil)
        }
        static func deny(_ code: RunvoyError.Code, _ reason: String, rule: String? = nil) -> Decision {
            Decision(allowed: false, reason: reason, error: RunvoyError(code, reason), rule: rule)
        }
    }

    // MARK: - Roles and permissions

    /// The caller's roles: root is always admin; others get the roles whose bindings name them or their groups,
    /// and those temporary grants give their uid until they expire (by the wall clock: a late timer extends none).
    static func roles(_ caller: Caller, _ config: DaemonConfig) -> Set<Role> {
        var roles = Set<Role>()
        if caller.isRoot { roles.insert(.admin) }
        if !config.grants.isEmpty {
            for grant in config.grants(of: caller.uid, atMs: WallClock.milliseconds()) {
                if let role = grant.role { roles.insert(role) }
            }
        }
        guard let name = caller.userName else { return roles }
        for binding in config.roles where binding.binds(userName: name, groupNames: caller.groupNames) {
            roles.insert(binding.role)
        }
        return roles
    }

    static func permits(_ caller: Caller, _ permission: Permission, _ config: DaemonConfig) -> Bool {
        PermissionTable.permits(roles(caller, config), permission)
    }

    /// The refusal for a caller without `permission`: says which roles it has, or that it has none, and who to ask.
    static func refusal(_ caller: Caller, _ permission: Permission, _ config: DaemonConfig) -> RunvoyError {
        let held = roles(caller, config)
        var message: String
        if held.isEmpty {
            message = "user \(caller.displayName) has no runvoy role"
        } else {
            let names = held.sorted().map(\.rawValue).joined(separator: ", ")
            message = "user \(caller.displayName) (roles: \(names)) lacks the \(permission.rawValue) permission"
        }
        if let contact = config.adminContact { message += "; ask \(contact) for access" }
        return RunvoyError(.permissionDenied, message)
    }

    /// Whether the user with `uid` may manage every secret now: the value of a secret an executor injects counts
    /// only when such a user wrote it last, since only administrators can write an executor's definition.
    static func mayWriteInjectedSecrets(uid: UInt32, _ config: DaemonConfig) -> Bool {
        permits(Caller.lookup(uid: uid), .secretsManageAll, config)
    }

    // MARK: - History

    /// Whose executions `caller` may see: nil for everyone's, else the uid whose own executions are visible.
    static func historyScope(_ caller: Caller, _ config: DaemonConfig) -> UInt32? {
        permits(caller, .viewAll, config) ? nil : caller.uid
    }

    /// Whether `caller` may see an execution started by `ownerUid` (its record and its output).
    static func mayView(_ caller: Caller, ownerUid: UInt32, _ config: DaemonConfig) -> Bool {
        let roles = roles(caller, config)
        return PermissionTable.permits(roles, .viewAll)
            || (caller.uid == ownerUid && PermissionTable.permits(roles, .viewOwn))
    }

    /// Whether `caller` may signal or kill an execution started by `ownerUid`.
    static func mayKill(_ caller: Caller, ownerUid: UInt32, _ config: DaemonConfig) -> Bool {
        let roles = roles(caller, config)
        return PermissionTable.permits(roles, .killAll)
            || (caller.uid == ownerUid && PermissionTable.permits(roles, .killOwn))
    }

    // MARK: - Executors and commands

    /// Whether `caller` may run commands on `executor` at all: it needs the exec permission and the executor's
    /// `allow` must admit it (administrators may use every executor), or a temporary grant of the executor.
    static func mayUse(_ caller: Caller, _ executor: ExecutorConfig, _ config: DaemonConfig) -> Bool {
        let roles = roles(caller, config)
        guard PermissionTable.permits(roles, .exec) else { return false }
        if roles.contains(.admin) { return true }
        if !config.grants.isEmpty,
            config.grants(of: caller.uid, atMs: WallClock.milliseconds()).contains(where: {
                $0.executor == executor.name
            })
        {
            return true
        }
        guard let name = caller.userName else { return false }
        return executor.access.admits(userName: name, groupNames: caller.groupNames, roles: roles)
    }

    /// Where a rule is written, for denials, `explain` and the audit trail.
    static func location(_ rule: ArgvPattern, _ config: DaemonConfig) -> String {
        "\(config.sourcePath ?? "(embedded configuration)"):\(rule.line)"
    }

    /// Decides an `exec` request: role, executor access, then the command rules (a matching deny rule wins;
    /// otherwise the first matching allow rule decides; no match is a refusal). `command` is argv[0] as found for
    /// the launch (`ExecPlan`), so the rules judge what will run; without it (`explain`) it is searched for here.
    /// `trusted` names a playbook step its administrator trusts: the command rules are then not applied (the role
    /// and the executor's access still are). It comes only from the configuration, never from a request.
    static func decide(
        caller: Caller, executor: ExecutorConfig, argv: [String], command: ResolvedCommand? = nil,
        config: DaemonConfig, trusted: String? = nil
    ) -> Decision {
        let roles = roles(caller, config)
        guard PermissionTable.permits(roles, .exec) else {
            return .deny(.permissionDenied, refusal(caller, .exec, config).message)
        }
        guard mayUse(caller, executor, config) else {
            var reason = "user \(caller.displayName) may not use executor '\(executor.name)'"
            if let contact = config.adminContact { reason += "; ask \(contact) for access" }
            return .deny(.permissionDenied, reason)
        }
        guard let first = argv.first else { return .deny(.badRequest, "argv must name a command") }
        if let trusted {
            return .allow(
                "\(trusted) is trusted by the administrator: the command rules of executor '\(executor.name)' are not applied",
                rule: nil, approval: executor.approval)
        }
        if case .any = executor.commands {
            return .allow("executor '\(executor.name)' accepts any command", rule: nil, approval: executor.approval)
        }
        let rules = executor.commands.rules
        let searchPath = executor.environment["PATH"]
        let matcher = CommandMatcher(
            command: command
                ?? ResolvedCommand(first, searchPath: searchPath, workingDirectory: executor.workingDirectory),
            searchPath: searchPath, workingDirectory: executor.workingDirectory, writer: caller.pathWriter,
            withTarget: rules.contains { $0.effect == .deny })
        if let deny = rules.first(where: { $0.effect == .deny && matcher.matches($0, argv: argv) }) {
            let at = location(deny, config)
            return .deny(
                .commandNotAllowed,
                "denied by the rule `\(deny.display)` of executor '\(executor.name)' at \(at)"
                    + uncertainPathNote(rules, argv: argv, matcher: matcher),
                rule: at)
        }
        if let allow = rules.first(where: { $0.effect == .allow && matcher.matches($0, argv: argv) }) {
            let at = location(allow, config)
            return .allow(
                "allowed by the rule `\(allow.display)` at \(at)", rule: at,
                approval: allow.approval ?? executor.approval)
        }
        return .deny(
            .commandNotAllowed,
            "no rule of executor '\(executor.name)' accepts this command; `runvoyctl capabilities` lists what you may run"
                + uncertainPathNote(rules, argv: argv, matcher: matcher))
    }

    /// For a refusal: says which arguments that `path_under` rules look at pass through a directory the caller can
    /// change or a link runvoyd cannot follow, which those rules never accept (and deny rules always match), so the
    /// caller is not left guessing. Empty when there are none.
    static func uncertainPathNote(_ rules: [ArgvPattern], argv: [String], matcher: CommandMatcher) -> String {
        var positions = Set<Int>()
        for rule in rules {
            for (index, element) in rule.elements.enumerated() where index > 0 && index < argv.count {
                if case .pathUnder = element { positions.insert(index) }
            }
        }
        let uncertain = positions.sorted().filter { index in
            let resolution = PathResolver.resolve(
                argv[index], from: matcher.workingDirectory, writer: matcher.writer)
            return resolution.changeable || resolution.indeterminate
        }
        guard !uncertain.isEmpty else { return "" }
        let which = uncertain.map { "argument \($0)" }.joined(separator: ", ")
        return "; \(which) passes through a directory you can change or a link runvoyd cannot follow, which"
            + " path_under rules never accept"
    }
}
