/// The daemon's own settings: the top level, `socket`, `limits`, `audit`, `history` and `secrets`.
extension ConfigSchema {
    /// The top level of the file.
    public enum TopKeys {
        public static let socket = ConfigKey("socket", .section("socket"), default: .value("{}"), "where to listen")
        public static let stateDirectory = ConfigKey(
            "state_directory", .absolutePath, default: .value("/var/lib/runvoy"),
            "the daemon's state: history, stored output, secrets store")
        public static let adminContact = ConfigKey(
            "admin_contact", .string, default: .none, "shown to callers who are refused")
        public static let limits = ConfigKey(
            "limits", .section("limits"), default: .value("{}"), "limits on clients and requests")
        public static let shutdownGrace = ConfigKey(
            "shutdown_grace", .duration(), default: .value("30s"), "on SIGTERM, how long executions get to finish")
        public static let killGrace = ConfigKey(
            "kill_grace", .duration(), default: .value("5s"), "after SIGTERM to a command, how long until SIGKILL")
        public static let audit = ConfigKey(
            "audit", .section("audit"), default: .value("{}"), "what happens when the journal refuses a record")
        public static let history = ConfigKey(
            "history", .section("history"), default: .value("{}"), "the execution history and its retention")
        public static let secrets = ConfigKey(
            "secrets", .section("secrets"), default: .value("{}"), "the secrets store and injected secret files")
        public static let metrics = ConfigKey(
            "metrics", .section("metrics"), default: .value("{}"), "where metrics are exposed (nowhere by default)")
        public static let roles = ConfigKey(
            "roles", .namedSections("roles.ROLE"), default: .value("{}"), "users and groups bound to each role")
        public static let executors = ConfigKey(
            "executors", .namedSections("executors.NAME"), default: .required, "the named execution environments")
        public static let expect = ConfigKey(
            "expect", .listOfSections("expect[N]"), default: .value("[]"), "expectations the policy must meet to load")
        public static let approvals = ConfigKey(
            "approvals", .section("approvals"), default: .value("{}"), "bounds on requests that wait for approval")
        public static let grants = ConfigKey(
            "grants", .section("grants"), default: .value("{}"), "temporary grants of roles and executors")
        public static let hooks = ConfigKey(
            "hooks", .listOfSections("hooks[N]"), default: .value("[]"),
            "commands run at points of every execution's life")
        public static let containment = ConfigKey(
            "containment", .string, default: .value("auto"),
            "`auto`, `cgroup` or `subreaper`: how executions' processes are confined (read at start-up)")

        public static let section = ConfigSection(
            path: "", doc: "the whole file", docsHeading: "### Top level",
            keys: [
                socket, stateDirectory, adminContact, limits, shutdownGrace, killGrace, audit, history, secrets,
                metrics, roles, executors, expect, containment, approvals, grants, hooks,
            ])
    }

    /// `socket`: where and how the daemon listens.
    public enum SocketKeys {
        public static let path = ConfigKey(
            "path", .absolutePath, default: .value("/run/runvoy/runvoyd.sock"), "where to listen")
        public static let mode = ConfigKey(
            "mode", .octalMode, default: .value("\"0660\""), "permission bits of the socket file")
        public static let group = ConfigKey("group", .group, default: .none, "group owning the socket file")

        public static let section = ConfigSection(
            path: "socket", doc: "where and how the daemon listens", docsHeading: "### `socket`",
            keys: [path, mode, group])
    }

    /// `limits`: what protects the daemon from hostile or runaway clients.
    public enum LimitsKeys {
        public static let maxFrameBytes = ConfigKey(
            "max_frame_bytes", .integer(1024...(64 << 20)), default: .value("1048576"), "largest request frame")
        public static let idleTimeout = ConfigKey(
            "idle_timeout", .duration(.positive), default: .value("30s"),
            "a connection with no execution that completes no frame for this long is closed")
        public static let maxConnections = ConfigKey(
            "max_connections", .integer(1...1_000_000), default: .value("4096"), "connections beyond this are closed")
        public static let maxExecutions = ConfigKey(
            "max_executions", .integer(1...100_000), default: .value("256"),
            "running executions beyond this are refused")
        public static let maxConnectionsPerUser = ConfigKey(
            "max_connections_per_user", .integer(1...1_000_000), default: .value("64"),
            "connections one user other than an administrator may hold")
        public static let maxConnectionsWithoutRole = ConfigKey(
            "max_connections_without_role", .integer(1...1_000_000), default: .value("4"),
            "connections one user with no role may hold")
        public static let reservedAdminConnections = ConfigKey(
            "reserved_admin_connections", .integer(0...1_000_000), default: .value("16"),
            "connections only administrators may take")
        public static let maxExecutionsPerUser = ConfigKey(
            "max_executions_per_user", .integer(1...100_000), default: .value("32"),
            "running executions one user other than an administrator may have")
        public static let reservedAdminExecutions = ConfigKey(
            "reserved_admin_executions", .integer(0...100_000), default: .value("8"),
            "running executions only administrators may start")
        public static let maxPendingBytesPerUser = ConfigKey(
            "max_pending_bytes_per_user", .size(1024...(1 << 40)), default: .value("8MiB"),
            "bytes of unfinished large request frames one user's connections may hold together")
        public static let requestRate = ConfigKey(
            "request_rate", .rate, default: .value("6000/1m"),
            "each user's requests (not hello, ping, whoami, stdin, signal, resize); administrators only by override")
        public static let execRate = ConfigKey(
            "exec_rate", .rate, default: .value("600/1m"),
            "each user's executions started; administrators only by override")
        public static let rates = ConfigKey(
            "rates", .section("limits.rates"), default: .value("{}"), "other rates for some roles and users")
        public static let maxEditBytes = ConfigKey(
            "max_edit_bytes", .size(1...(48 << 20)), default: .value("512KiB"),
            "largest file `runvoyctl edit` reads or writes (its base64 must fit in max_frame_bytes)")
        public static let maxArguments = ConfigKey(
            "max_arguments", .integer(1...1_000_000), default: .value("4096"), "arguments in one request's argv")
        public static let maxArgumentBytes = ConfigKey(
            "max_argument_bytes", .size(1...(64 << 20)), default: .value("128KiB"), "bytes in one argument")
        public static let maxArgvBytes = ConfigKey(
            "max_argv_bytes", .size(1...(64 << 20)), default: .value("1MiB"), "bytes in the whole argv")
        public static let maxEnvEntries = ConfigKey(
            "max_env_entries", .integer(0...100_000), default: .value("256"),
            "environment variables one request may pass")
        public static let maxEnvBytes = ConfigKey(
            "max_env_bytes", .size(0...(64 << 20)), default: .value("256KiB"), "bytes of those variables")

        public static let section = ConfigSection(
            path: "limits", doc: "limits on clients and on the size of requests", docsHeading: "### `limits`",
            keys: [
                maxFrameBytes, idleTimeout, maxConnections, maxExecutions, maxConnectionsPerUser,
                maxConnectionsWithoutRole, reservedAdminConnections, maxExecutionsPerUser, reservedAdminExecutions,
                maxPendingBytesPerUser, maxEditBytes, requestRate, execRate, rates, maxArguments, maxArgumentBytes,
                maxArgvBytes, maxEnvEntries, maxEnvBytes,
            ])
    }

    /// `limits.rates`: rates other than the defaults, by role and by user.
    public enum RatesKeys {
        public static let roles = ConfigKey(
            "roles", .namedSections("limits.rates.NAME"), default: .value("{}"),
            "by role (admin, operator, developer, viewer)")
        public static let users = ConfigKey(
            "users", .namedSections("limits.rates.NAME"), default: .value("{}"), "by user name; wins over roles")

        public static let section = ConfigSection(
            path: "limits.rates", doc: "rates by role and by user", docsHeading: "### `limits`", docsPrefix: "rates.",
            keys: [roles, users])
    }

    /// `limits.rates.roles.ROLE`, `limits.rates.users.USER`: one role's or user's rates.
    public enum RateKeys {
        public static let requestRate = ConfigKey(
            "request_rate", .rate, default: .described("`limits.request_rate`"), "its requests")
        public static let execRate = ConfigKey(
            "exec_rate", .rate, default: .described("`limits.exec_rate`"), "its executions")

        public static let section = ConfigSection(
            path: "limits.rates.NAME", doc: "one role's or user's rates", docsHeading: "### `limits`",
            docsPrefix: "rates.NAME.", keys: [requestRate, execRate])
    }

    /// `audit`: how the audit trail behaves when the journal refuses or stalls.
    public enum AuditKeys {
        public static let failClosed = ConfigKey(
            "fail_closed", .boolean, default: .value("true"), "refuse to run what cannot be audited")
        public static let writeTimeout = ConfigKey(
            "write_timeout", .duration(.between(.milliseconds(10), .seconds(600))), default: .value("5s"),
            "how long an action waits for the journal to take its record")

        public static let section = ConfigSection(
            path: "audit", doc: "the audit trail", docsHeading: "### `audit`", keys: [failClosed, writeTimeout])
    }

    /// `history`: how much output each execution keeps, and how long and how much is retained.
    public enum HistoryKeys {
        public static let maxOutputBytes = ConfigKey(
            "max_output_bytes", .size((64 << 10)...(1 << 40)), default: .value("64MiB"),
            "stored output per execution")
        public static let maxAge = ConfigKey(
            "max_age", .duration(.positive, orWord: "never"), default: .value("30d"),
            "finished executions older than this are deleted")
        public static let maxTotalBytes = ConfigKey(
            "max_total_bytes", .size((1 << 20)...(1 << 50), orWord: "unlimited"), default: .value("10GiB"),
            "the history's size, past which the oldest output goes")
        public static let pruneInterval = ConfigKey(
            "prune_interval", .duration(.atLeast(.seconds(1))), default: .value("10m"), "how often retention runs")
        public static let minFreeBytes = ConfigKey(
            "min_free_bytes", .size(0...(1 << 50)), default: .value("64MiB"),
            "free space below which new executions are refused")

        public static let section = ConfigSection(
            path: "history", doc: "the execution history", docsHeading: "### `history`",
            keys: [maxOutputBytes, maxAge, maxTotalBytes, pruneInterval, minFreeBytes])
    }

    /// `secrets`: where the master key is, where injected secret files go, and who may read values back.
    public enum SecretsKeys {
        public static let keyFile = ConfigKey(
            "key_file", .absolutePath, default: .described("`STATE_DIRECTORY/secrets.key`"),
            "the master key file when systemd passes no credential")
        public static let runtimeDirectory = ConfigKey(
            "runtime_directory", .absolutePath, default: .value("/run/runvoy/secrets"),
            "where secret files for commands are written")
        public static let minLength = ConfigKey(
            "min_length", .integer(1...4096), default: .value("6"), "shorter values are refused at set time")
        public static let adminRead = ConfigKey(
            "admin_read", .boolean, default: .value("false"), "let administrators read values back")

        public static let section = ConfigSection(
            path: "secrets", doc: "the secrets store", docsHeading: "### `secrets`",
            keys: [keyFile, runtimeDirectory, minLength, adminRead])
    }

    /// `metrics`: where the daemon's metrics are exposed. Each way is off until configured.
    public enum MetricsKeys {
        public static let socket = ConfigKey(
            "socket", .absolutePath, default: .none, "a Unix socket answering HTTP GET /metrics")
        public static let socketMode = ConfigKey(
            "socket_mode", .octalMode, default: .value("\"0660\""), "permission bits of the metrics socket")
        public static let socketGroup = ConfigKey(
            "socket_group", .group, default: .none, "group owning the metrics socket")
        public static let textfile = ConfigKey(
            "textfile", .absolutePath, default: .none, "a node-exporter textfile-collector file, replaced atomically")
        public static let textfileInterval = ConfigKey(
            "textfile_interval", .duration(.atLeast(.seconds(1))), default: .value("15s"),
            "how often the textfile is written")
        public static let listen = ConfigKey(
            "listen", .string, default: .none, "HOST:PORT of a TCP listener for GET /metrics (logged as a warning)")
        public static let userLabels = ConfigKey(
            "user_labels", .boolean, default: .value("false"), "also count executions by calling user")

        public static let section = ConfigSection(
            path: "metrics", doc: "metrics exposition", docsHeading: "### `metrics`",
            keys: [socket, socketMode, socketGroup, textfile, textfileInterval, listen, userLabels])
    }

    /// `approvals`: bounds on the requests that wait for approval.
    public enum ApprovalsKeys {
        public static let maxPending = ConfigKey(
            "max_pending", .integer(1...100_000), default: .value("1000"),
            "requests waiting for approval at once, everyone's; beyond it new ones are refused (busy)")
        public static let maxPendingPerUser = ConfigKey(
            "max_pending_per_user", .integer(1...1000), default: .value("10"),
            "requests one user may have waiting for approval at once")
        public static let maxExpires = ConfigKey(
            "max_expires", .duration(.atLeast(.seconds(1))), default: .value("7d"),
            "the longest a request waits for approval, whatever its policy's `expires`")

        public static let section = ConfigSection(
            path: "approvals", doc: "requests that wait for approval", docsHeading: "### `approvals`",
            keys: [maxPending, maxPendingPerUser, maxExpires])
    }

    /// `grants`: what temporary grants may be, and what users may ask for.
    public enum GrantsKeys {
        public static let maxDuration = ConfigKey(
            "max_duration", .duration(.between(GrantSettings.minDuration, GrantSettings.maxMaxDuration)),
            default: .value("24h"), "the longest a temporary grant lasts (1m-90d); a longer `--for` is refused")
        public static let requestableRoles = ConfigKey(
            "requestable_roles", .strings, default: .value("[]"),
            "roles users may ask for with `request-grant` (`admin` only if listed)")
        public static let requestableExecutors = ConfigKey(
            "requestable_executors", .strings, default: .value("[]"),
            "executors users may ask for with `request-grant`; \"*\" for any")
        public static let approval = ConfigKey(
            "approval", .section("executors.NAME.approval"),
            default: .described("one administrator, expires 1h, reason required"),
            "the approval a request for a grant needs (count at least 1)")
        public static let endRunning = ConfigKey(
            "end_running", .string, default: .value("kill"),
            "`kill` or `keep`: what happens to the running executions a grant admitted when it ends")

        public static let section = ConfigSection(
            path: "grants", doc: "temporary grants", docsHeading: "### `grants`",
            keys: [maxDuration, requestableRoles, requestableExecutors, approval, endRunning])
    }
}
