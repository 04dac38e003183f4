/// The daemon's whole configuration: one immutable snapshot, loaded and validated at start and on each reload.
public struct DaemonConfig: Sendable, Equatable {
    public var socket: SocketSettings
    public var stateDirectory: String
    public var limits: Limits
    /// On SIGTERM, how long running executions get to finish.
    public var shutdownGrace: Duration
    /// After SIGTERM to a command, how long until SIGKILL.
    public var killGrace: Duration
    public var audit: AuditSettings
    /// The execution history and stored output.
    public var history: HistorySettings = HistorySettings()
    /// The secrets store and how secrets reach commands.
    public var secrets: SecretsSettings = SecretsSettings()
    /// Where metrics are exposed (nowhere by default).
    public var metrics: MetricsSettings = MetricsSettings()
    /// Bounds on the requests that wait for approval.
    public var approvals: ApprovalSettings = ApprovalSettings()
    /// What temporary grants may be, and what users may ask for (the file's `grants`).
    public var grantSettings: GrantSettings = GrantSettings()
    /// The temporary grants in force: not read from the file, but added by the daemon from its state database
    /// (`ConfigStore.setGrants`). Each counts only until its expiry.
    public var grants: [TemporaryGrant] = []
    /// Hooks of every executor, in file order (each executor's own run after these).
    public var hooks: [HookConfig] = []
    /// The playbooks of the `playbooks/` folder beside the configuration file, sorted by name.
    public var playbooks: [PlaybookConfig] = []
    /// Unix users and groups bound to roles (root is always an administrator besides).
    public var roles: [RoleBinding] = []
    /// Expectations about the policy that must hold for the configuration to load.
    public var expectations: [PolicyExpectation] = []
    /// Who to ask for access; shown in denials.
    public var adminContact: String?
    /// How executions' processes are confined (chosen at start-up; a reload does not change it).
    public var containment: ContainmentSetting = .auto
    /// Executors in file order.
    public var executors: [ExecutorConfig]
    /// The executor used when a request names none.
    public var defaultExecutorName: String
    /// The file this was loaded from; nil for the embedded configuration.
    public var sourcePath: String?
    /// A stable digest of the source text (64-bit FNV-1a, 16 hex digits), recorded in the audit trail.
    public var digest: String
    /// Problems that do not stop the configuration from loading.
    public var warnings: [ConfigDiagnostic]

    /// A stable digest of the temporary grants in force (16 hex digits), so that what was decided under one set of
    /// grants is decided again under another.
    public var grantsDigest: String {
        ConfigParser.digest(
            grants.map { "\($0.id) \($0.uid) \($0.subject.display) \($0.expiresAtMs)" }.sorted().joined(separator: "\n")
        )
    }

    /// The temporary grants of `uid` that count at `now`.
    public func grants(of uid: UInt32, atMs now: Int64) -> [TemporaryGrant] {
        grants.filter { $0.uid == uid && $0.isActive(atMs: now) }
    }

    public func playbook(named name: String) -> PlaybookConfig? {
        playbooks.first { $0.name == name }
    }

    public func executor(named name: String) -> ExecutorConfig? {
        executors.first { $0.name == name }
    }

    /// The default executor. A validated configuration always has one.
    public var defaultExecutor: ExecutorConfig {
        executor(named: defaultExecutorName) ?? executors[0]
    }

    public static func == (lhs: DaemonConfig, rhs: DaemonConfig) -> Bool {
        lhs.socket == rhs.socket && lhs.stateDirectory == rhs.stateDirectory && lhs.limits == rhs.limits
            && lhs.shutdownGrace == rhs.shutdownGrace && lhs.killGrace == rhs.killGrace && lhs.audit == rhs.audit
            && lhs.history == rhs.history && lhs.secrets == rhs.secrets && lhs.metrics == rhs.metrics
            && lhs.approvals == rhs.approvals && lhs.grantSettings == rhs.grantSettings && lhs.grants == rhs.grants
            && lhs.hooks == rhs.hooks && lhs.playbooks == rhs.playbooks
            && lhs.roles == rhs.roles
            && lhs.expectations == rhs.expectations
            && lhs.adminContact == rhs.adminContact && lhs.containment == rhs.containment
            && lhs.executors == rhs.executors
            && lhs.defaultExecutorName == rhs.defaultExecutorName
    }
}

/// Where and how the daemon listens.
public struct SocketSettings: Sendable, Equatable {
    public var path: String = "/run/runvoy/runvoyd.sock"
    /// Permission bits of the socket file.
    public var mode: UInt32 = 0o660
    /// Group that owns the socket file.
    public var group: String?

    public init() {}
}

/// Resource limits that protect the daemon from hostile or runaway clients.
public struct Limits: Sendable, Equatable {
    public var maxFrameBytes: Int = 1 << 20
    public var idleTimeout: Duration = .seconds(30)
    public var maxConnections: Int = 4096
    public var maxExecutions: Int = 256
    /// Fair shares: what one user other than an administrator may hold, and what only administrators may take,
    /// so that no user can deny the daemon to the others and an administrator can always connect and act.
    public var maxConnectionsPerUser: Int = 64
    /// Connections of a user with no role (who may only say `hello`, `ping` and `whoami`).
    public var maxConnectionsWithoutRole: Int = 4
    public var reservedAdminConnections: Int = 16
    public var maxExecutionsPerUser: Int = 32
    public var reservedAdminExecutions: Int = 8
    /// Bytes of unfinished request frames over 64 KiB that one user's connections may hold together (at least
    /// `maxFrameBytes`, so one frame always fits).
    public var maxPendingBytesPerUser: Int = 8 << 20
    /// The largest file `runvoyctl edit` reads or writes.
    public var maxEditBytes: Int = 512 << 10
    /// Rate limits: each user's token buckets for requests (other than greetings and what goes to a running
    /// execution) and for executions, unless `rateOverrides` sets another for the user or one of its roles.
    /// Administrators are held to them only through an override.
    public var requestRate: RateLimit = .perPeriod(count: 6000, period: .seconds(60))
    public var execRate: RateLimit = .perPeriod(count: 600, period: .seconds(60))
    public var rateOverrides = RateOverrides()
    /// The size of a request's command and environment (`exec`, `explain`), checked before any policy work.
    /// Arguments in one argv (Linux itself allows far more, but few commands need more).
    public var maxArguments: Int = 4096
    /// UTF-8 bytes in one argument: Linux's MAX_ARG_STRLEN.
    public var maxArgumentBytes: Int = 128 << 10
    /// UTF-8 bytes in the whole argv, each argument counted with its terminating NUL as exec counts it.
    public var maxArgvBytes: Int = 1 << 20
    /// Environment variables a caller may pass (`--env`).
    public var maxEnvEntries: Int = 256
    /// UTF-8 bytes of those variables, each counted as `NAME=VALUE` and a NUL.
    public var maxEnvBytes: Int = 256 << 10

    public init() {}
}

/// How the audit trail behaves when the journal refuses a record.
public struct AuditSettings: Sendable, Equatable {
    /// Refuse to run anything whose audit record cannot be written.
    public var failClosed: Bool = true
    /// How long an action waits for the journal to take its audit record before it is refused
    /// (`audit_unavailable`): a stalled journald must not hold requests for ever.
    public var writeTimeout: Duration = .seconds(5)

    public init() {}
}

/// The execution history: how much output each execution keeps, and how long and how much is retained.
public struct HistorySettings: Sendable, Equatable {
    /// Stored output per execution: past this, the head and the tail are kept with a marker between them.
    public var maxOutputBytes: Int64 = 64 << 20
    /// Finished executions older than this are deleted (record and output); nil keeps them forever.
    public var maxAge: Duration? = .seconds(30 * 86400)
    /// Stored output of all executions together: past this the oldest finished executions lose their output
    /// (their records stay); nil sets no limit.
    public var maxTotalBytes: Int64? = 10 << 30
    /// How often retention runs (it also runs at start).
    public var pruneInterval: Duration = .seconds(600)
    /// New executions are refused (`store_unavailable`) while the state directory's file system has less free
    /// space than this, so that running ones can still record their output and their end.
    public var minFreeBytes: Int64 = 64 << 20

    public init() {}
}

/// Where the secrets' master key is, where injected secret files go, and who may read values back.
public struct SecretsSettings: Sendable, Equatable {
    /// The master key file, used when systemd passes no credential ($CREDENTIALS_DIRECTORY/runvoy.key); nil means
    /// `STATE_DIRECTORY/secrets.key`, created on first start.
    public var keyFile: String?
    /// Where secret files for executions are written (should be a tmpfs); one folder per execution.
    public var runtimeDirectory: String = "/run/runvoy/secrets"
    /// Values shorter than this are refused: redacting them would mangle ordinary output.
    public var minLength: Int = 6
    /// Whether administrators may read a value back (`runvoyctl secrets get`); every read is audited.
    public var adminRead: Bool = false

    public init() {}
}

/// Where the daemon's metrics are exposed. Every way is off until configured.
public struct MetricsSettings: Sendable, Equatable {
    /// A Unix socket answering `GET /metrics` (plain HTTP); nil exposes none.
    public var socket: String?
    /// Permission bits of that socket file.
    public var socketMode: UInt32 = 0o660
    /// Group that owns that socket file (root's when nil).
    public var socketGroup: String?
    /// A node-exporter textfile-collector file (`….prom`), replaced atomically every `textfileInterval`; nil
    /// writes none.
    public var textfile: String?
    public var textfileInterval: Duration = .seconds(15)
    /// `HOST:PORT` of a TCP listener for `GET /metrics`; nil (the default) listens on no TCP port.
    public var listen: String?
    /// Count executions by calling user too (one series per user who ran something).
    public var userLabels: Bool = false

    public init() {}

    /// `HOST:PORT` (`[::1]:9464` for IPv6), or nil when it is not one.
    public static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }
}
