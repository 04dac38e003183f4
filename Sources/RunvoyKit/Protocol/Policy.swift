/// Parameters of `explain`: would this command be allowed? Or, with `playbook` and `step`, the command that step
/// would run with `params`, and whether it would be allowed (a `trusted` step says so).
public struct ExplainParams: Codable, Sendable, Equatable {
    /// The command; empty (or absent on the wire) when a playbook's step is asked about.
    public var argv: [String]
    /// The executor; the default executor when absent.
    public var executor: String?
    /// Ask about another user (administrators only); the caller when absent.
    public var user: String?
    /// A playbook whose step `step` is asked about, with the parameter values `params`.
    public var playbook: String?
    public var step: String?
    public var params: [String: String]?

    public init(
        argv: [String], executor: String? = nil, user: String? = nil, playbook: String? = nil, step: String? = nil,
        params: [String: String]? = nil
    ) {
        self.argv = argv
        self.executor = executor
        self.user = user
        self.playbook = playbook
        self.step = step
        self.params = params
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        argv = try c.decodeIfPresent([String].self, forKey: .argv) ?? []
        executor = try c.decodeIfPresent(String.self, forKey: .executor)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        playbook = try c.decodeIfPresent(String.self, forKey: .playbook)
        step = try c.decodeIfPresent(String.self, forKey: .step)
        params = try c.decodeIfPresent([String: String].self, forKey: .params)
    }

    enum CodingKeys: String, CodingKey {
        case argv, executor, user, playbook, step, params
    }
}

/// Result of `explain`: the decision `exec` would make, and why.
public struct ExplainResult: Codable, Sendable, Equatable {
    public var user: String
    public var roles: [String]
    public var executor: String
    /// `allow` or `deny`.
    public var decision: String
    /// For a denial, the error code `exec` would answer with.
    public var code: String?
    public var reason: String
    /// `FILE:LINE` of the rule that decided, when a rule did.
    public var rule: String?
    /// For an allow that needs approval: what it needs ("needs 2 approvals (roles admin), expires 15m").
    public var approval: String?
    /// For a playbook's step: the command it would run with the values given (absent otherwise).
    public var argv: [String]?
    /// For a playbook's step: whether the administrator trusts it (its executor's command rules not applied).
    public var trusted: Bool?

    public init(
        user: String, roles: [String], executor: String, decision: String, code: String?, reason: String,
        rule: String?, approval: String? = nil
    ) {
        self.approval = approval
        self.user = user
        self.roles = roles
        self.executor = executor
        self.decision = decision
        self.code = code
        self.reason = reason
        self.rule = rule
    }

    /// Writes every member, absent ones as null.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(user, forKey: .user)
        try c.encode(roles, forKey: .roles)
        try c.encode(executor, forKey: .executor)
        try c.encode(decision, forKey: .decision)
        try c.encode(code, forKey: .code)
        try c.encode(reason, forKey: .reason)
        try c.encode(rule, forKey: .rule)
        try c.encode(approval, forKey: .approval)
        try c.encodeIfPresent(argv, forKey: .argv)
        try c.encodeIfPresent(trusted, forKey: .trusted)
    }

    enum CodingKeys: String, CodingKey {
        case user, roles, executor, decision, code, reason, rule, approval, argv, trusted
    }
}

/// One command rule as `capabilities` lists it.
public struct RuleInfo: Codable, Sendable, Equatable {
    /// `allow` or `deny`.
    public var effect: String
    /// The rule as written: `terraform {plan|apply} *`, `any`.
    public var pattern: String
    /// `FILE:LINE`, or null for `commands: any`.
    public var rule: String?
    /// The approval the rule's own `approval` asks for ("needs 1 approval (groups sre), expires 1h", "needs no
    /// approval"); nil when it has none of its own (its executor's applies) and from daemons before approvals.
    public var approval: String?

    public init(effect: String, pattern: String, rule: String?, approval: String? = nil) {
        self.effect = effect
        self.pattern = pattern
        self.rule = rule
        self.approval = approval
    }

    /// `rule` is written as `null` when there is none, as docs/PROTOCOL.md shows.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(effect, forKey: .effect)
        try c.encode(pattern, forKey: .pattern)
        try c.encode(rule, forKey: .rule)
        try c.encodeIfPresent(approval, forKey: .approval)
    }

    enum CodingKeys: String, CodingKey {
        case effect, pattern, rule, approval
    }
}

/// An executor the caller may use, as `capabilities` lists it.
public struct ExecutorCapability: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    public var isDefault: Bool
    public var runAs: String
    public var rules: [RuleInfo]
    /// Whether the input its commands are given is stored (`record_input`); nil from daemons before it.
    public var recordInput: Bool?
    /// The approval its commands need unless a rule says otherwise ("needs 2 approvals (roles admin), expires
    /// 15m"); nil when they need none.
    public var approval: String?

    public init(
        name: String, description: String?, isDefault: Bool, runAs: String, rules: [RuleInfo],
        recordInput: Bool? = nil
    ) {
        self.recordInput = recordInput
        self.name = name
        self.description = description
        self.isDefault = isDefault
        self.runAs = runAs
        self.rules = rules
    }

    enum CodingKeys: String, CodingKey {
        case name, description, rules
        case isDefault = "default"
        case runAs = "run_as"
        case recordInput = "record_input"
        case approval
    }

    /// `description` is written as `null` when the executor has none, as docs/PROTOCOL.md shows.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(description, forKey: .description)
        try c.encode(isDefault, forKey: .isDefault)
        try c.encode(runAs, forKey: .runAs)
        try c.encode(rules, forKey: .rules)
        try c.encodeIfPresent(recordInput, forKey: .recordInput)
        try c.encodeIfPresent(approval, forKey: .approval)
    }
}

/// Result of `capabilities`: what the caller may do, like `sudo -l`.
public struct CapabilitiesResult: Codable, Sendable, Equatable {
    public var user: String
    public var roles: [String]
    public var permissions: [String]
    public var executors: [ExecutorCapability]
    /// How the daemon confines executions' processes: `cgroup`, `subreaper` (nil from daemons before it).
    public var containment: String?
    /// The caller's temporary grants in force, with their expiry (nil from daemons before them).
    public var grants: [GrantInfo]?

    public init(user: String, roles: [String], permissions: [String], executors: [ExecutorCapability]) {
        self.user = user
        self.roles = roles
        self.permissions = permissions
        self.executors = executors
    }
}

/// One role binding as `users` lists it.
public struct BindingInfo: Codable, Sendable, Equatable {
    public var role: String
    public var users: [String]
    public var groups: [String]
    public var rule: String

    public init(role: String, users: [String], groups: [String], rule: String) {
        self.role = role
        self.users = users
        self.groups = groups
        self.rule = rule
    }
}

/// A user and the roles it holds.
public struct UserRoles: Codable, Sendable, Equatable {
    public var user: String
    public var uid: UInt32
    public var roles: [String]

    public init(user: String, uid: UInt32, roles: [String]) {
        self.user = user
        self.uid = uid
        self.roles = roles
    }
}

/// Result of `users`: the bindings in force and every user of the user database that holds a role.
public struct UsersResult: Codable, Sendable, Equatable {
    public var bindings: [BindingInfo]
    public var users: [UserRoles]
    /// The temporary grants in force, with their expiry (nil from daemons before them).
    public var grants: [GrantInfo]?

    public init(bindings: [BindingInfo], users: [UserRoles]) {
        self.bindings = bindings
        self.users = users
    }
}

/// Result of `reload`.
public struct ReloadResult: Codable, Sendable, Equatable {
    public var configDigest: String
    public var policyDigest: String
    public var executors: [String]

    public init(configDigest: String, policyDigest: String, executors: [String]) {
        self.configDigest = configDigest
        self.policyDigest = policyDigest
        self.executors = executors
    }

    enum CodingKeys: String, CodingKey {
        case executors
        case configDigest = "config_digest"
        case policyDigest = "policy_digest"
    }
}
