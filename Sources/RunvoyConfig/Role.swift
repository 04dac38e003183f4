/// The roles a caller can hold. Root is always `admin`; everyone else gets roles from the `roles` bindings.
public enum Role: String, Sendable, CaseIterable, Comparable {
    case admin
    case `operator`
    case developer
    case viewer

    public static func < (lhs: Role, rhs: Role) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// What a role may do. `PermissionTable` says which roles hold which.
public enum Permission: String, Sendable, CaseIterable {
    /// Run commands (`exec`), on the executors whose `allow` admits the caller.
    case exec
    /// `list`, `status`, `logs` of one's own executions.
    case viewOwn = "view_own"
    /// `list`, `status`, `logs` of everyone's executions.
    case viewAll = "view_all"
    /// `kill` (and `signal` by id) of one's own executions.
    case killOwn = "kill_own"
    /// `kill` of everyone's executions.
    case killAll = "kill_all"
    /// `whoami`, `capabilities`, `explain` for oneself: which executors and commands one may use.
    case executorsRead = "executors_read"
    /// Run on executors that inject secrets.
    case secretsUse = "secrets_use"
    /// Set, rotate, list and remove the secrets one owns.
    case secretsManageOwn = "secrets_manage_own"
    /// Set, rotate, list and remove any secret.
    case secretsManageAll = "secrets_manage_all"
    /// `users`: the bindings in force and everyone's effective roles.
    case usersRead = "users_read"
    /// `reload`: apply the configuration file now.
    case configReload = "config_reload"
    /// `explain --user`: ask about another user.
    case explainOthers = "explain_others"
    /// `backup`: an archive of the whole history, stored output and sealed secrets (and the key, if asked).
    case backup
    /// `health`: the daemon's checks, configuration digest and up-time.
    case health
    /// `runvoyctl edit`: edit files as an executor's user, where its `editable` allows, on executors one may use.
    case edit
    /// `approve` and `deny`: answer other users' requests whose `approvers` admit the caller (never one's own).
    case approve
    /// `grant` and `revoke`: give a user a role or an executor for a limited time, and end such grants.
    case grantsManage = "grants_manage"
    /// `request-grant`: ask for a role or an executor for a limited time (as `grants.requestable_*` allow).
    case grantsRequest = "grants_request"
}

/// The one place that says which role holds which permission (docs/CONFIGURATION.md prints the same table; a
/// test keeps the two in step). A caller's permissions are the union over its roles.
public enum PermissionTable {
    public static let grants: [Role: Set<Permission>] = [
        .admin: Set(Permission.allCases),
        .operator: [
            .exec, .viewOwn, .viewAll, .killOwn, .killAll, .executorsRead, .secretsUse, .secretsManageOwn, .usersRead,
            .health, .edit, .approve, .grantsRequest,
        ],
        .developer: [
            .exec, .viewOwn, .killOwn, .executorsRead, .secretsUse, .secretsManageOwn, .health, .edit, .approve,
            .grantsRequest,
        ],
        .viewer: [.viewOwn, .viewAll, .executorsRead, .health, .grantsRequest],
    ]

    public static func permits(_ roles: Set<Role>, _ permission: Permission) -> Bool {
        roles.contains { grants[$0]?.contains(permission) == true }
    }

    public static func permissions(_ roles: Set<Role>) -> [Permission] {
        Permission.allCases.filter { permits(roles, $0) }
    }
}

/// Which users and groups hold a role, as the `roles` section binds them.
public struct RoleBinding: Sendable, Equatable {
    public var role: Role
    /// User names; `*` binds every user.
    public var users: [String]
    public var groups: [String]
    public var line: Int

    public init(role: Role, users: [String], groups: [String], line: Int) {
        self.role = role
        self.users = users
        self.groups = groups
        self.line = line
    }

    public func binds(userName: String, groupNames: [String]) -> Bool {
        users.contains("*") || users.contains(userName) || groupNames.contains { groups.contains($0) }
    }
}

/// An expectation about the policy, checked by `runvoyd --check-config` and before every (re)load.
public struct PolicyExpectation: Sendable, Equatable {
    public var user: String
    /// nil: the default executor.
    public var executor: String?
    public var argv: [String]
    public var allow: Bool
    public var line: Int

    public init(user: String, executor: String?, argv: [String], allow: Bool, line: Int) {
        self.user = user
        self.executor = executor
        self.argv = argv
        self.allow = allow
        self.line = line
    }
}
