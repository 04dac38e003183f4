/// A named execution environment: who commands run as, with what environment, for whom, and which commands.
public struct ExecutorConfig: Sendable, Equatable {
    public var name: String
    public var isDefault: Bool = false
    public var description: String?
    public var runAs: RunAs
    /// The command's whole environment.
    public var environment: [String: String] = [:]
    /// Environment variables whose value is a secret: variable name → secret name.
    public var secretEnvironment: [String: String] = [:]
    /// Secrets written to files for the command: variable name (set to the file's path) → secret name.
    public var secretFiles: [String: String] = [:]
    /// Names a caller may add with `--env`; an entry ending in `*` is a prefix.
    public var allowEnv: [String] = []
    public var workingDirectory: String = "/"
    public var defaultTimeout: Duration?
    public var maxTimeout: Duration?
    /// How many of its executions may run at once; nil for no limit of its own.
    public var concurrency: Int?
    /// Each user's executions on this executor, administrators' too; nil for no limit of its own.
    public var execRate: RateLimit?
    /// The named locks each of its executions holds for its whole life, sorted by name, each named once.
    public var locks: [ExecutorLock] = []
    public var access: AccessList = AccessList()
    public var commands: CommandRule
    /// Whether commands may, or must, run on a pseudo-terminal (`exec -t`).
    public var tty: TerminalPolicy = .allow
    /// Whether the input given to its commands (`stdin`: typed into a terminal or piped) is stored with their
    /// output, redacted like it.
    public var recordInput = false
    /// What happens to the execution's other processes when its main process exits.
    public var leftovers: LeftoverPolicy = .kill
    /// Limits written to each execution's cgroup (cgroup containment only).
    public var limits = ExecutionLimits()
    /// Resource limits set in the command's process before it execs.
    public var rlimits = ChildResourceLimits()
    /// systemd execution properties (`sandbox:`): each execution runs as a transient unit with them. nil: the
    /// executor is not sandboxed.
    public var sandbox: SandboxConfig?
    /// Where `runvoyctl edit` may edit files as `run_as`: each entry is a directory (or a file) matched as
    /// `path_under` matches; empty, nothing may be edited.
    public var editable: [String] = []
    /// The approvals its commands need (a rule's own `approval` wins); nil needs none.
    public var approval: ApprovalPolicy?
    /// Who may run a command at once with `--break-glass` instead of waiting for approval; nil: no one.
    public var breakGlass: AccessList?
    /// Its own hooks, in file order (run after the global ones of the same event).
    public var hooks: [HookConfig] = []
    /// Line of the executor's key in the file.
    public var line: Int

    public init(name: String, runAs: RunAs, commands: CommandRule, line: Int) {
        self.name = name
        self.runAs = runAs
        self.commands = commands
        self.line = line
    }

    /// Whether any of its commands needs approval: the executor's `approval`, or one of its rules'.
    public var needsApproval: Bool {
        approval?.requiresApproval == true || commands.rules.contains { $0.approval?.requiresApproval == true }
    }

    /// Every secret this executor injects, by name.
    public var secretNames: Set<String> { Set(secretEnvironment.values).union(secretFiles.values) }

    /// Whether a caller may pass environment variable `name`.
    public func allowsEnv(_ name: String) -> Bool {
        allowEnv.contains { entry in
            entry.hasSuffix("*") ? name.hasPrefix(entry.dropLast()) : entry == name
        }
    }
}

/// A named lock an executor's executions take: exclusive (no one else holds it meanwhile) or shared (held with
/// other shared holders, never with an exclusive one). Locks live in the daemon's memory only.
public struct ExecutorLock: Sendable, Hashable {
    public var name: String
    public var shared: Bool

    public init(name: String, shared: Bool) {
        self.name = name
        self.shared = shared
    }
}

/// Whether an executor's commands run on a pseudo-terminal when the caller asks for one.
public enum TerminalPolicy: String, Sendable, Equatable, CaseIterable {
    /// A terminal when asked for, pipes otherwise.
    case allow
    /// Never a terminal: a request for one is refused.
    case deny
    /// Always a terminal: a request without one is refused.
    case require
}

/// The identity commands run as.
public struct RunAs: Sendable, Equatable {
    public var user: String
    /// nil: the user's primary group.
    public var group: String?

    public init(user: String, group: String?) {
        self.user = user
        self.group = group
    }
}

/// Who may use an executor (besides administrators, who always may).
public struct AccessList: Sendable, Equatable {
    /// User names; `*` admits every user.
    public var users: [String] = []
    public var groups: [String] = []
    /// Holders of any of these roles.
    public var roles: [Role] = []

    public init(users: [String] = [], groups: [String] = [], roles: [Role] = []) {
        self.users = users
        self.groups = groups
        self.roles = roles
    }

    public func admits(userName: String, groupNames: [String], roles callerRoles: Set<Role> = []) -> Bool {
        users.contains("*") || users.contains(userName) || groupNames.contains { groups.contains($0) }
            || roles.contains { callerRoles.contains($0) }
    }
}

/// Which commands an executor accepts.
public enum CommandRule: Sendable, Equatable {
    /// Every command.
    case any
    /// Rules in file order: a matching `deny` rule always wins; otherwise the first matching `allow` rule decides,
    /// and a command no rule matches is refused.
    case patterns([ArgvPattern])

    /// The rules, with `any` as a single allow-everything rule.
    public var rules: [ArgvPattern] {
        switch self {
        case .any: [.any(line: 0)]
        case .patterns(let patterns): patterns
        }
    }
}
