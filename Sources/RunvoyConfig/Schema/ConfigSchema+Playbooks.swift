/// The keys of a playbook file, `playbooks/NAME.yaml` beside the configuration file. They are not part of the
/// configuration file itself, so they are listed apart from ``ConfigSchema/sections``; `access`, `locks` and
/// `approval` take the keys of the executors' sections of the same name.
extension ConfigSchema {
    /// Every section of a playbook file, its top level first.
    public static let playbookSections: [ConfigSection] = [
        PlaybookKeys.section, PlaybookParameterKeys.section, PlaybookStepKeys.section, PlaybookScheduleKeys.section,
    ]

    /// The top level of `playbooks/NAME.yaml`.
    public enum PlaybookKeys {
        public static let description = ConfigKey("description", .string, default: .none, "free text")
        public static let access = ConfigKey(
            "access", .section("executors.NAME.allow"), default: .value("{}"),
            "who may run it besides administrators: {users, groups, roles}")
        public static let parameters = ConfigKey(
            "parameters", .namedSections("playbook.parameters.NAME"), default: .value("{}"),
            "its typed parameters, by name")
        public static let steps = ConfigKey(
            "steps", .listOfSections("playbook.steps[N]"), default: .required, "what it runs, in order")
        public static let locks = ConfigKey(
            "locks", .locks("executors.NAME.locks[N]"), default: .value("[]"),
            "named locks the run holds from its first step to its last, as an executor's `locks`")
        public static let approval = ConfigKey(
            "approval", .section("executors.NAME.approval"), default: .none,
            "the approvals the run needs before its first step, as an executor's `approval`")
        public static let schedule = ConfigKey(
            "schedule", .section("playbook.schedule"), default: .none, "when a systemd timer runs it")

        public static let section = ConfigSection(
            path: "playbook", doc: "one playbook file", docsHeading: "### Playbook files",
            keys: [description, access, parameters, steps, locks, approval, schedule])
    }

    /// `parameters.NAME`: one typed parameter.
    public enum PlaybookParameterKeys {
        public static let type = ConfigKey(
            "type", .string, default: .required, "`string`, `enum`, `integer`, `boolean` or `path`")
        public static let description = ConfigKey(
            "description", .string, default: .none, "shown by `playbook show` and in completions")
        public static let required = ConfigKey(
            "required", .boolean, default: .value("false"), "a run must give it (never with a `default`)")
        public static let defaultValue = ConfigKey(
            "default", .string, default: .none, "its value when a run gives none, valid for its type")
        public static let pattern = ConfigKey(
            "pattern", .string, default: .none, "string: a regular expression the whole value must match")
        public static let values = ConfigKey(
            "values", .strings, default: .described("required for `enum`"), "enum: the values it may take")
        public static let min = ConfigKey(
            "min", .integer(Int.min...Int.max), default: .none, "integer: the smallest value")
        public static let max = ConfigKey(
            "max", .integer(Int.min...Int.max), default: .none, "integer: the largest value")
        public static let under = ConfigKey(
            "under", .strings, default: .described("required for `path`"),
            "path: absolute directories the value must be in, as `path_under` decides")

        public static let section = ConfigSection(
            path: "playbook.parameters.NAME", doc: "a typed parameter", docsHeading: "#### Parameters",
            keys: [type, description, required, defaultValue, pattern, values, min, max, under])
    }

    /// `steps[N]`: one step.
    public enum PlaybookStepKeys {
        public static let name = ConfigKey(
            "name", .string, default: .required, "unique in the playbook, spelt like an executor's name")
        public static let executor = ConfigKey(
            "executor", .string, default: .described("the default executor"), "the executor it runs on")
        public static let argv = ConfigKey(
            "argv", .strings, default: .required, "the command: literal arguments and `{{parameter}}` placeholders")
        public static let when = ConfigKey(
            "when", .string, default: .value("succeeded"),
            "`succeeded`, `failed` or `always`: whether it runs, by the earlier steps' outcomes")
        public static let continueOnError = ConfigKey(
            "continue_on_error", .boolean, default: .value("false"), "its failure is not the run's failure")
        public static let timeout = ConfigKey(
            "timeout", .duration(.positive), default: .described("the executor's"), "its timeout")
        public static let trusted = ConfigKey(
            "trusted", .boolean, default: .value("false"), "its executor's command rules are not applied to it")

        public static let section = ConfigSection(
            path: "playbook.steps[N]", doc: "a step", docsHeading: "#### Steps",
            keys: [name, executor, argv, when, continueOnError, timeout, trusted])
    }

    /// `schedule`: when a systemd timer runs the playbook, and as whom.
    public enum PlaybookScheduleKeys {
        public static let calendar = ConfigKey(
            "calendar", .string, default: .required, "a systemd calendar expression (`OnCalendar=`)")
        public static let runAsCaller = ConfigKey(
            "run_as_caller", .string, default: .required, "the user the scheduled run is made as")
        public static let params = ConfigKey(
            "params", .stringMap, default: .value("{}"), "the run's parameters: {NAME: VALUE}")

        public static let section = ConfigSection(
            path: "playbook.schedule", doc: "a playbook's schedule", docsHeading: "#### Schedules",
            keys: [calendar, runAsCaller, params])
    }
}
