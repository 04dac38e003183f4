/// Who may do what: `roles`, `expect`, and `executors` with their identity, environment, access and command rules.
extension ConfigSchema {
    /// `roles.ROLE`: the users and groups bound to one role.
    public enum RoleKeys {
        public static let users = ConfigKey(
            "users", .strings, default: .value("[]"), "user names bound to the role; \"*\" binds every user")
        public static let groups = ConfigKey(
            "groups", .strings, default: .value("[]"), "groups whose members hold the role")

        public static let section = ConfigSection(
            path: "roles.ROLE", doc: "one role's bindings (admin, operator, developer, viewer)",
            docsHeading: "### `roles`", docsPrefix: "ROLE.", keys: [users, groups])
    }

    /// `expect[N]`: one expectation about the policy.
    public enum ExpectKeys {
        public static let user = ConfigKey(
            "user", .string, default: .required, "the user the expectation is about")
        public static let executor = ConfigKey(
            "executor", .string, default: .described("the default executor"), "the executor")
        public static let argv = ConfigKey("argv", .strings, default: .required, "the command, as a list")
        public static let result = ConfigKey(
            "result", .string, default: .required, "`allow` or `deny`: what exec must decide")

        public static let section = ConfigSection(
            path: "expect[N]", doc: "an expectation checked before every load", docsHeading: "### `expect`",
            keys: [user, executor, argv, result])
    }

    /// `executors.NAME`: one named execution environment.
    public enum ExecutorKeys {
        public static let isDefault = ConfigKey(
            "default", .boolean, default: .value("false"), "the executor used when a request names none")
        public static let description = ConfigKey("description", .string, default: .none, "free text")
        public static let runAs = ConfigKey(
            "run_as", .section("executors.NAME.run_as"), default: .required, "the identity commands run as")
        public static let environment = ConfigKey(
            "environment", .environment("executors.NAME.environment.VAR"), default: .value("{}"),
            "the command's whole environment")
        public static let secretFiles = ConfigKey(
            "secret_files", .namedSections("executors.NAME.environment.VAR"), default: .value("{}"),
            "secrets written to files whose paths the variables hold")
        public static let allowEnv = ConfigKey(
            "allow_env", .strings, default: .value("[]"), "names a caller may add with --env; `PREFIX*` for a prefix")
        public static let workingDirectory = ConfigKey(
            "working_directory", .absolutePath, default: .value("/"), "where the command starts")
        public static let timeout = ConfigKey("timeout", .duration(), default: .none, "the default timeout")
        public static let maxTimeout = ConfigKey(
            "max_timeout", .duration(), default: .none, "the largest timeout a caller may ask for")
        public static let concurrency = ConfigKey(
            "concurrency", .integer(1...100_000), default: .none, "how many of its executions may run at once")
        public static let execRate = ConfigKey(
            "exec_rate", .rate, default: .none, "each user's executions on it, administrators' too: N/PERIOD")
        public static let locks = ConfigKey(
            "locks", .locks("executors.NAME.locks[N]"), default: .value("[]"),
            "named locks its executions hold for their life: a name (exclusive) or {name: NAME, shared: true}")
        public static let allow = ConfigKey(
            "allow", .section("executors.NAME.allow"), default: .value("{}"), "who may use the executor")
        public static let tty = ConfigKey(
            "tty", .string, default: .value("allow"),
            "`allow`, `deny` or `require`: whether commands run on a pseudo-terminal (`exec -t`)")
        public static let recordInput = ConfigKey(
            "record_input", .boolean, default: .value("false"),
            "store the input commands are given (typed or piped), redacted like output")
        public static let editable = ConfigKey(
            "editable", .strings, default: .value("[]"),
            "absolute paths `runvoyctl edit` may edit as `run_as`, each matched as `path_under`")
        public static let commands = ConfigKey(
            "commands", .commandRules("executors.NAME.commands[N]"), default: .required,
            "`any`, or a list of command rules")
        public static let leftovers = ConfigKey(
            "leftovers", .string, default: .value("kill"),
            "`kill` or `wait`: the execution's other processes when its main process exits")
        public static let limits = ConfigKey(
            "limits", .section("executors.NAME.limits"), default: .value("{}"),
            "cgroup limits of each execution (cgroup containment)")
        public static let rlimits = ConfigKey(
            "rlimits", .section("executors.NAME.rlimits"), default: .value("{}"),
            "resource limits set in the command's process before it execs")
        public static let sandbox = ConfigKey(
            "sandbox", .section("executors.NAME.sandbox"), default: .none,
            "systemd execution properties: each execution runs as a transient unit with them")

        public static let approval = ConfigKey(
            "approval", .section("executors.NAME.approval"), default: .none,
            "the approvals its commands need before they run (a rule's own `approval` wins)")
        public static let breakGlass = ConfigKey(
            "break_glass", .section("executors.NAME.break_glass"), default: .none,
            "who may run at once with `--break-glass` instead of waiting for approval")
        public static let hooks = ConfigKey(
            "hooks", .listOfSections("executors.NAME.hooks[N]"), default: .value("[]"),
            "commands run at points of its executions' lives, after the global ones")

        public static let section = ConfigSection(
            path: "executors.NAME", doc: "one executor", docsHeading: "### `executors`",
            keys: [
                isDefault, description, runAs, environment, secretFiles, allowEnv, workingDirectory, timeout,
                maxTimeout, concurrency, execRate, locks, allow, tty, recordInput, editable, commands, leftovers,
                limits, rlimits, sandbox, approval, breakGlass, hooks,
            ])
    }

    /// `executors.NAME.limits`: what each execution's cgroup is limited to.
    public enum ExecutorLimitKeys {
        public static let memoryMax = ConfigKey(
            "memory_max", .size(4096...Int64.max), default: .none, "memory.max: the most memory, e.g. 512MiB")
        public static let memorySwapMax = ConfigKey(
            "memory_swap_max", .size(0...Int64.max), default: .none, "memory.swap.max: the most swap")
        public static let cpuQuota = ConfigKey(
            "cpu_quota", .integer(1...100_000), default: .none, "cpu.max, in percent of one CPU (200: two CPUs)")
        public static let cpuWeight = ConfigKey(
            "cpu_weight", .integer(1...10_000), default: .none, "cpu.weight, 1-10000 (100 is the kernel's default)")
        public static let tasksMax = ConfigKey(
            "tasks_max", .integer(1...4_194_304), default: .none, "pids.max: the most processes and threads")
        public static let ioWeight = ConfigKey(
            "io_weight", .integer(1...10_000), default: .none, "io.weight, 1-10000 (100 is the kernel's default)")

        public static let section = ConfigSection(
            path: "executors.NAME.limits", doc: "cgroup limits of each execution", docsHeading: "### `executors`",
            docsPrefix: "limits.", keys: [memoryMax, memorySwapMax, cpuQuota, cpuWeight, tasksMax, ioWeight])
    }

    /// `executors.NAME.rlimits`: resource limits set in the command's process (soft and hard alike).
    public enum ResourceLimitKeys {
        public static let nofile = ConfigKey(
            "nofile", .integer(1...1_048_576), default: .none, "RLIMIT_NOFILE: open files per process")
        public static let nproc = ConfigKey(
            "nproc", .integer(1...4_194_304), default: .none, "RLIMIT_NPROC: processes of the run-as user")
        public static let core = ConfigKey(
            "core", .size(0...Int64.max, orWord: "unlimited"), default: .value("0"),
            "RLIMIT_CORE: the largest core dump; 0 (none) by default")

        public static let section = ConfigSection(
            path: "executors.NAME.rlimits", doc: "resource limits of the command's process",
            docsHeading: "### `executors`", docsPrefix: "rlimits.", keys: [nofile, nproc, core])
    }

    /// `executors.NAME.locks[N]`: a lock written as a mapping (a name alone is an exclusive lock).
    public enum LockKeys {
        public static let name = ConfigKey("name", .string, default: .required, "the lock's name")
        public static let shared = ConfigKey(
            "shared", .boolean, default: .value("false"), "held together with other shared holders")

        public static let section = ConfigSection(
            path: "executors.NAME.locks[N]", doc: "a named lock and its mode", docsHeading: "### `executors`",
            docsPrefix: "locks[N].", keys: [name, shared])
    }

    /// `executors.NAME.run_as`: the identity an executor's commands run as.
    public enum RunAsKeys {
        public static let user = ConfigKey("user", .user, default: .required, "the user commands run as")
        public static let group = ConfigKey(
            "group", .group, default: .described("the user's primary group"), "the group commands run as")

        public static let section = ConfigSection(
            path: "executors.NAME.run_as", doc: "the identity commands run as", docsHeading: "### `executors`",
            docsPrefix: "run_as.", keys: [user, group])
    }

    /// `executors.NAME.allow`: who may use an executor besides administrators.
    public enum AllowKeys {
        public static let users = ConfigKey(
            "users", .strings, default: .value("[]"), "users who may use the executor; \"*\" for every user")
        public static let groups = ConfigKey(
            "groups", .strings, default: .value("[]"), "groups whose members may use the executor")
        public static let roles = ConfigKey(
            "roles", .strings, default: .value("[]"), "roles whose holders may use the executor")

        public static let section = ConfigSection(
            path: "executors.NAME.allow", doc: "who may use the executor", docsHeading: "### `executors`",
            docsPrefix: "allow.", keys: [users, groups, roles])
    }

    /// `executors.NAME.approval` (and a rule's `approval`): the approvals a command needs before it runs.
    public enum ApprovalKeys {
        public static let count = ConfigKey(
            "count", .integer(0...ApprovalPolicy.maxCount), default: .value("1"),
            "how many distinct approvers must approve; 0 for none")
        public static let approvers = ConfigKey(
            "approvers", .section("executors.NAME.approval.approvers"),
            default: .described("required when `count` is above 0"), "who may approve: {users, groups, roles}")
        public static let expires = ConfigKey(
            "expires", .duration(.atLeast(.seconds(1))), default: .value("1h"),
            "how long a request waits for its approvals (at most `approvals.max_expires`)")
        public static let reason = ConfigKey(
            "reason", .string, default: .value("optional"),
            "`required` or `optional`: whether a request must give a reason (`exec --reason`)")

        public static let section = ConfigSection(
            path: "executors.NAME.approval", doc: "the approvals a command needs", docsHeading: "#### Approvals",
            docsPrefix: "approval.", keys: [count, approvers, expires, reason])
    }

    /// `executors.NAME.approval.approvers`: who may approve (never the requester).
    public enum ApproverKeys {
        public static let users = ConfigKey(
            "users", .strings, default: .value("[]"), "users who may approve; \"*\" for every user")
        public static let groups = ConfigKey(
            "groups", .strings, default: .value("[]"), "groups whose members may approve")
        public static let roles = ConfigKey(
            "roles", .strings, default: .value("[]"), "roles whose holders may approve")

        public static let section = ConfigSection(
            path: "executors.NAME.approval.approvers", doc: "who may approve", docsHeading: "#### Approvals",
            docsPrefix: "approval.approvers.", keys: [users, groups, roles])
    }

    /// `executors.NAME.break_glass`: who may skip the approval in an emergency (audited, listed for review).
    public enum BreakGlassKeys {
        public static let users = ConfigKey(
            "users", .strings, default: .value("[]"), "users who may use --break-glass; \"*\" for every user")
        public static let groups = ConfigKey(
            "groups", .strings, default: .value("[]"), "groups whose members may use --break-glass")
        public static let roles = ConfigKey(
            "roles", .strings, default: .value("[]"), "roles whose holders may use --break-glass")

        public static let section = ConfigSection(
            path: "executors.NAME.break_glass", doc: "who may break the glass", docsHeading: "#### Approvals",
            docsPrefix: "break_glass.", keys: [users, groups, roles])
    }

    /// `{secret: SECRET}`: a reference to a secret in the store, as a value of `environment` or `secret_files`.
    public enum SecretReferenceKeys {
        public static let secret = ConfigKey("secret", .string, default: .required, "the secret's name")

        public static let section = ConfigSection(
            path: "executors.NAME.environment.VAR", doc: "a secret reference, in environment and secret_files",
            docsHeading: "### `executors`", keys: [secret])
    }

    /// `executors.NAME.commands[N]`: a rule written as a mapping, `{allow: SHAPE}` or `{deny: SHAPE}`.
    public enum RuleKeys {
        public static let allow = ConfigKey(
            "allow", .argvShape("executors.NAME.commands[N][N]"), default: .notApplicable,
            "commands of this shape are allowed (a shape alone means the same)")
        public static let deny = ConfigKey(
            "deny", .argvShape("executors.NAME.commands[N][N]"), default: .notApplicable,
            "commands of this shape are refused, wherever the rule stands")
        public static let approval = ConfigKey(
            "approval", .section("executors.NAME.approval"), default: .described("the executor's"),
            "beside `allow`: the approvals this rule's commands need instead of the executor's (`{count: 0}`: none)")

        public static let section = ConfigSection(
            path: "executors.NAME.commands[N]", doc: "a command rule with its effect",
            docsHeading: "#### Command rules", keys: [allow, deny, approval])
    }

    /// `executors.NAME.commands[N][N]`: an argument of a rule's shape written as a mapping.
    public enum MatcherKeys {
        public static let regex = ConfigKey(
            "regex", .string, default: .notApplicable, "an argument the regular expression matches as a whole")
        public static let pathUnder = ConfigKey(
            "path_under", .absolutePath, default: .notApplicable, "a path that is the directory or inside it")

        public static let section = ConfigSection(
            path: "executors.NAME.commands[N][N]", doc: "an argument matched by pattern or place",
            docsHeading: "#### Command rules", keys: [regex, pathUnder])
    }
}
