/// `hooks[N]` and `executors.NAME.hooks[N]`: commands run at points of an execution's life (`HookConfig`).
extension ConfigSchema {
    /// The keys of one hook, the same in both places.
    static func hookKeys() -> [ConfigKey] {
        [
            ConfigKey("name", .string, default: .required, "the hook's name, unique in its list"),
            ConfigKey(
                "event", .string, default: .required,
                "`pre_exec`, `post_exec`, `on_approval_request` or `on_break_glass`"),
            ConfigKey("command", .strings, default: .required, "the hook's argv; the first an absolute path"),
            ConfigKey("user", .user, default: .required, "the user it runs as (root only if written)"),
            ConfigKey("group", .group, default: .described("the user's primary group"), "the group it runs as"),
            ConfigKey(
                "timeout", .duration(.between(.seconds(1), .seconds(600))), default: .value("10s"),
                "how long it may run; then its process group is killed"),
            ConfigKey(
                "on_error", .string,
                default: .described("`deny` for `pre_exec` and `on_approval_request`, `allow` for the others"),
                "`deny` or `allow`: what a hook that fails, is killed or times out means"),
        ]
    }

    /// `hooks[N]`: a hook of every executor.
    public enum HookKeys {
        public static let section = ConfigSection(
            path: "hooks[N]", doc: "a hook of every executor", docsHeading: "### `hooks`", docsPrefix: "hooks[N].",
            keys: hookKeys())
    }

    /// `executors.NAME.hooks[N]`: a hook of one executor (run after the global hooks of its event).
    public enum ExecutorHookKeys {
        public static let section = ConfigSection(
            path: "executors.NAME.hooks[N]", doc: "a hook of one executor", docsHeading: "### `hooks`",
            docsPrefix: "hooks[N].", keys: hookKeys())
    }
}
