/// One step of a playbook: an argv template run on an executor.
public struct PlaybookStep: Sendable, Equatable {
    /// Unique in the playbook; spelt like an executor's name.
    public var name: String
    /// The executor it runs on; the default executor when nil.
    public var executor: String?
    /// One template per argument.
    public var argv: [ArgvTemplate]
    /// Whether it runs, by the outcomes of the steps before it.
    public var when: StepCondition = .succeeded
    /// A failure of this step does not count as the run's failure (later `succeeded` steps still run).
    public var continueOnError = false
    /// Its timeout; the executor's default when nil (never more than the executor's maximum).
    public var timeout: Duration?
    /// The administrator trusts this step: its executor's command rules are not applied to its argv (access to the
    /// executor is still required, and `explain` and the audit trail say so).
    public var trusted = false
    public var line: Int

    public init(name: String, executor: String?, argv: [ArgvTemplate], line: Int) {
        self.name = name
        self.executor = executor
        self.argv = argv
        self.line = line
    }
}

/// When a step runs, by the outcomes of the steps before it (a step skipped counts as neither).
public enum StepCondition: String, Sendable, Equatable, CaseIterable {
    /// Only when no earlier step failed (a failure under `continue_on_error` is not one). The default.
    case succeeded
    /// Only when an earlier step failed.
    case failed
    /// Whatever happened before.
    case always
}

/// One argument of a step: literal text with at most one `{{parameter}}` placeholder. The value fills exactly
/// that place in this one argument; it is never split, globbed or given to a shell.
public struct ArgvTemplate: Sendable, Equatable {
    /// Text before the placeholder (the whole argument when there is none).
    public var prefix: String
    /// The parameter whose value goes here; nil for a literal argument.
    public var parameter: String?
    /// Text after the placeholder.
    public var suffix: String

    public init(literal: String) {
        self.prefix = literal
        self.parameter = nil
        self.suffix = ""
    }

    public init(prefix: String = "", parameter: String, suffix: String = "") {
        self.prefix = prefix
        self.parameter = parameter
        self.suffix = suffix
    }

    /// The argument for these values, or nil when its parameter has no value (the argument is then left out).
    public func render(_ values: [String: String]) -> String? {
        guard let parameter else { return prefix }
        guard let value = values[parameter] else { return nil }
        return prefix + value + suffix
    }
}
