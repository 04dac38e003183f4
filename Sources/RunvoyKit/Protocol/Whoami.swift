/// Result of `whoami`: the caller as the daemon sees it, from the kernel's peer credentials.
public struct WhoamiResult: Codable, Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// User name from the user database, or nil when the uid has no entry.
    public var user: String?
    /// Primary group name, or nil when the gid has no entry.
    public var group: String?
    /// Names of every group the user belongs to.
    public var groups: [String]
    /// Whether the caller is an administrator (root, or the admin role).
    public var admin: Bool
    /// The caller's roles (admin, operator, developer, viewer); empty when it has none.
    public var roles: [String]?
    /// Whether the daemon holds a pidfd for the caller (SO_PEERPIDFD).
    public var pidfd: Bool
    /// Executors the caller may use.
    public var executors: [String]
    /// The executor used when none is named.
    public var defaultExecutor: String?
    /// How the daemon confines executions' processes: `cgroup`, `subreaper` (nil from daemons before it).
    public var containment: String?

    public init(
        uid: UInt32, gid: UInt32, pid: Int32, user: String?, group: String?, groups: [String], admin: Bool,
        pidfd: Bool, executors: [String], defaultExecutor: String?
    ) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.user = user
        self.group = group
        self.groups = groups
        self.admin = admin
        self.roles = nil
        self.pidfd = pidfd
        self.executors = executors
        self.defaultExecutor = defaultExecutor
    }

    enum CodingKeys: String, CodingKey {
        case uid, gid, pid, user, group, groups, admin, roles, pidfd, executors
        case defaultExecutor = "default_executor"
        case containment
    }

    /// Every member is written, `null` where there is no value, as docs/PROTOCOL.md shows.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(uid, forKey: .uid)
        try c.encode(gid, forKey: .gid)
        try c.encode(pid, forKey: .pid)
        try c.encode(user, forKey: .user)
        try c.encode(group, forKey: .group)
        try c.encode(groups, forKey: .groups)
        try c.encode(admin, forKey: .admin)
        try c.encode(roles ?? [], forKey: .roles)
        try c.encode(pidfd, forKey: .pidfd)
        try c.encode(executors, forKey: .executors)
        try c.encode(defaultExecutor, forKey: .defaultExecutor)
        try c.encodeIfPresent(containment, forKey: .containment)
    }
}
