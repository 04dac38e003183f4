import RunvoyKit

/// Every key of the configuration file, declared once per section: its name, the type its value must have, its
/// default and a one-line description.
///
/// The parser takes each section's keys from here (a key not declared is refused as unknown, with the nearest
/// declared one as a suggestion) and reads scalar values by their declared type, range and bound. A test checks
/// every declared key against docs/CONFIGURATION.md and packaging/runvoyd.yaml, and that each declared default is
/// what the parser uses when the key is left out. The sections themselves are in `ConfigSchema+Settings.swift`
/// (the daemon's own settings) and `ConfigSchema+Policy.swift` (roles, expectations, executors and their rules).
public enum ConfigSchema {
    /// Every section, the top level first.
    public static let sections: [ConfigSection] = [
        TopKeys.section, SocketKeys.section, LimitsKeys.section, RatesKeys.section, RateKeys.section, AuditKeys.section,
        HistoryKeys.section, SecretsKeys.section, MetricsKeys.section, RoleKeys.section, ExpectKeys.section,
        ExecutorKeys.section, RunAsKeys.section, ExecutorLimitKeys.section, ResourceLimitKeys.section,
        SandboxKeys.section,
        AllowKeys.section, LockKeys.section, SecretReferenceKeys.section, RuleKeys.section, MatcherKeys.section,
        ApprovalsKeys.section, ApprovalKeys.section, ApproverKeys.section, BreakGlassKeys.section,
        GrantsKeys.section,
        HookKeys.section, ExecutorHookKeys.section,
    ]

    /// The section at `path`, as sections name each other in `ConfigType` (a playbook file's sections included).
    public static func section(at path: String) -> ConfigSection? {
        sections.first { $0.path == path } ?? playbookSections.first { $0.path == path }
    }
}

/// The keys one mapping of the file may hold.
public struct ConfigSection: Sendable {
    /// Where the section stands in the file, written as diagnostics write key paths, with `NAME`, `ROLE`, `VAR`
    /// and `[N]` for the parts the file chooses: `limits`, `executors.NAME.run_as`, `expect[N]`.
    public var path: String
    /// What the section is for, in one line.
    public var doc: String
    /// The heading of docs/CONFIGURATION.md under which its keys are documented.
    public var docsHeading: String
    /// How that part of the documentation names its keys: `run_as.` for `run_as.user`, `ROLE.` for `ROLE.users`.
    public var docsPrefix: String
    /// The keys, in the order the parser lists them (the first of equally near keys is the one suggested).
    public var keys: [ConfigKey]

    public init(path: String, doc: String, docsHeading: String, docsPrefix: String = "", keys: [ConfigKey]) {
        self.path = path
        self.doc = doc
        self.docsHeading = docsHeading
        self.docsPrefix = docsPrefix
        self.keys = keys
    }

    /// The names of the keys, as the parser allows them.
    public var names: [String] { keys.map(\.name) }
}

/// One key: its name, the type of its value, its default and what it is for.
public struct ConfigKey: Sendable, Equatable {
    public var name: String
    public var type: ConfigType
    public var defaultValue: ConfigDefault
    /// What the key does, in one line (docs/CONFIGURATION.md says the rest).
    public var doc: String

    public init(_ name: String, _ type: ConfigType, default defaultValue: ConfigDefault, _ doc: String) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.doc = doc
    }
}

/// What a key's value must be.
public enum ConfigType: Sendable, Equatable {
    /// Any scalar, taken as text.
    case string
    /// A string that starts with `/`.
    case absolutePath
    /// Octal permission bits written as a string, `"0660"` or `"0o660"`, at most `0777`.
    case octalMode
    /// The name of a user that exists.
    case user
    /// The name of a group that exists.
    case group
    /// `true` or `false`.
    case boolean
    /// An integer within the range.
    case integer(ClosedRange<Int>)
    /// A byte count, a number with an optional unit (`64MiB`), within the range; `orWord`, if any, is a word that
    /// turns the limit off (`unlimited`).
    case size(ClosedRange<Int64>, orWord: String? = nil)
    /// A token bucket's rate, `N/PERIOD` (`600/1m`, `2/s`), or `unlimited`.
    case rate
    /// A duration (`30s`, `1h30m`) within the bound; `orWord`, if any, is a word that turns it off (`never`).
    case duration(DurationBound = .any, orWord: String? = nil)
    /// A list of strings.
    case strings
    /// A mapping from names to strings (a playbook schedule's `params`).
    case stringMap
    /// A mapping with the keys of the section at this path.
    case section(String)
    /// A mapping from names the file chooses (executors, roles) to mappings with the keys of the section at this path.
    case namedSections(String)
    /// A list of mappings with the keys of the section at this path.
    case listOfSections(String)
    /// A mapping from environment variable names to strings, or to a secret reference (the section at this path).
    case environment(String)
    /// `any`, or a list of command rules: each a shape (below), or a mapping with the keys of the section at
    /// this path.
    case commandRules(String)
    /// A list of lock names, each alone or in a mapping with the keys of the section at this path.
    case locks(String)
    /// A rule's shape: `any`, or a list of arguments, each a word, a list of alternatives or a mapping with the
    /// keys of the section at this path.
    case argvShape(String)

    /// The section whose keys the value holds, for the types that hold one.
    public var sectionPath: String? {
        switch self {
        case .section(let path), .namedSections(let path), .listOfSections(let path), .environment(let path),
            .commandRules(let path), .argvShape(let path), .locks(let path):
            path
        default: nil
        }
    }
}

/// Which durations a key accepts.
public enum DurationBound: Sendable, Equatable {
    case any
    /// More than zero.
    case positive
    case atLeast(Duration)
    case between(Duration, Duration)

    public func admits(_ duration: Duration) -> Bool {
        switch self {
        case .any: true
        case .positive: duration > .zero
        case .atLeast(let minimum): duration >= minimum
        case .between(let minimum, let maximum): duration >= minimum && duration <= maximum
        }
    }

    /// What the diagnostic says to a duration the bound refuses, e.g. `must be at least 1s`.
    public var requirement: String {
        switch self {
        case .any: "must be a duration"
        case .positive: "must be positive"
        case .atLeast(let minimum): "must be at least \(DurationParser.format(minimum))"
        case .between(let minimum, let maximum):
            "must be between \(DurationParser.format(minimum)) and \(DurationParser.format(maximum))"
        }
    }
}

/// What holds when a key is left out.
public enum ConfigDefault: Sendable, Equatable {
    /// The same as writing this value (as YAML).
    case value(String)
    /// Nothing: the setting is off or empty.
    case none
    /// The key must be written.
    case required
    /// A default that depends on something else, as docs/CONFIGURATION.md writes it.
    case described(String)
    /// The key has no default of its own: it stands for something else (a rule's effect, an argument's kind).
    case notApplicable

    /// The default as the "default" column of docs/CONFIGURATION.md shows it.
    public var documented: String {
        switch self {
        case .value(let text): "`\(text)`"
        case .none: "none"
        case .required: "required"
        case .described(let text): text
        case .notApplicable: ""
        }
    }
}
