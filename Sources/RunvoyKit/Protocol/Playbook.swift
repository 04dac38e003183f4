/// Parameters of `playbook_show`.
public struct PlaybookRef: Codable, Sendable, Equatable {
    public var name: String

    public init(name: String) {
        self.name = name
    }
}

/// A playbook's parameter as `playbook_list` and `playbook_show` describe it.
public struct PlaybookParameterInfo: Codable, Sendable, Equatable {
    public var name: String
    /// `string`, `enum`, `integer`, `boolean` or `path`.
    public var type: String
    public var description: String?
    public var required: Bool
    public var defaultValue: String?
    /// `string`: the regular expression a value must match as a whole.
    public var pattern: String?
    /// `enum`: the values allowed.
    public var values: [String]?
    /// `integer`: the bounds, each optional.
    public var min: Int64?
    public var max: Int64?
    /// `path`: the folders a value must be under.
    public var under: [String]?

    public init(
        name: String, type: String, description: String? = nil, required: Bool = false, defaultValue: String? = nil,
        pattern: String? = nil, values: [String]? = nil, min: Int64? = nil, max: Int64? = nil, under: [String]? = nil
    ) {
        self.name = name
        self.type = type
        self.description = description
        self.required = required
        self.defaultValue = defaultValue
        self.pattern = pattern
        self.values = values
        self.min = min
        self.max = max
        self.under = under
    }

    enum CodingKeys: String, CodingKey {
        case name, type, description, required, pattern, values, min, max, under
        case defaultValue = "default"
    }
}

/// One playbook in `playbook_list`.
public struct PlaybookSummary: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    public var parameters: [PlaybookParameterInfo]

    public init(name: String, description: String?, parameters: [PlaybookParameterInfo]) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// Result of `playbook_list`: the playbooks the caller may run, by name.
public struct PlaybookListResult: Codable, Sendable, Equatable {
    public var playbooks: [PlaybookSummary]

    public init(playbooks: [PlaybookSummary]) {
        self.playbooks = playbooks
    }
}

/// A step as `playbook_show` describes it.
public struct PlaybookStepInfo: Codable, Sendable, Equatable {
    public var name: String
    /// The executor it runs on (the default executor's name when the file names none).
    public var executor: String
    /// The argv templates as written: literal text with at most one `{{parameter}}` each.
    public var argv: [String]
    /// `succeeded`, `failed` or `always`.
    public var when: String
    public var continueOnError: Bool
    /// Its timeout in milliseconds; the executor's default when absent.
    public var timeoutMs: Int64?
    /// The administrator trusts it: its executor's command rules are not applied to its argv.
    public var trusted: Bool

    public init(
        name: String, executor: String, argv: [String], when: String, continueOnError: Bool, timeoutMs: Int64?,
        trusted: Bool
    ) {
        self.name = name
        self.executor = executor
        self.argv = argv
        self.when = when
        self.continueOnError = continueOnError
        self.timeoutMs = timeoutMs
        self.trusted = trusted
    }

    enum CodingKeys: String, CodingKey {
        case name, executor, argv, when, trusted
        case continueOnError = "continue_on_error"
        case timeoutMs = "timeout_ms"
    }
}

/// A playbook's schedule as `playbook_show` describes it.
public struct PlaybookScheduleInfo: Codable, Sendable, Equatable {
    public var calendar: String
    public var runAsCaller: String
    public var params: [String: String]

    public init(calendar: String, runAsCaller: String, params: [String: String]) {
        self.calendar = calendar
        self.runAsCaller = runAsCaller
        self.params = params
    }

    enum CodingKeys: String, CodingKey {
        case calendar, params
        case runAsCaller = "run_as_caller"
    }
}

/// Result of `playbook_show`.
public struct PlaybookInfo: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    public var parameters: [PlaybookParameterInfo]
    public var steps: [PlaybookStepInfo]
    /// The named locks the run holds: `NAME` or `NAME (shared)`.
    public var locks: [String]
    /// The approvals the run needs before its first step, as approvers are shown them; absent when none.
    public var approval: String?
    public var schedule: PlaybookScheduleInfo?

    public init(
        name: String, description: String?, parameters: [PlaybookParameterInfo], steps: [PlaybookStepInfo],
        locks: [String], approval: String?, schedule: PlaybookScheduleInfo?
    ) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.steps = steps
        self.locks = locks
        self.approval = approval
        self.schedule = schedule
    }
}

/// Parameters of `playbook_run`.
public struct PlaybookRunParams: Codable, Sendable, Equatable {
    public var name: String
    /// Parameter values by name, as text.
    public var params: [String: String]?
    /// Why it runs: given to each step as `exec`'s `reason`.
    public var reason: String?
    /// Send the steps' output as binary frames, as `exec`'s `binary_output`.
    public var binaryOutput: Bool?
    /// Run it as its schedule: the values come from the configuration, and only the schedule's user may.
    public var schedule: Bool?

    public init(
        name: String, params: [String: String]? = nil, reason: String? = nil, binaryOutput: Bool? = nil,
        schedule: Bool? = nil
    ) {
        self.name = name
        self.params = params
        self.reason = reason
        self.binaryOutput = binaryOutput
        self.schedule = schedule
    }

    enum CodingKeys: String, CodingKey {
        case name, params, reason, schedule
        case binaryOutput = "binary_output"
    }
}

/// The `run_started` event of `playbook_run`: every step was checked, and the first is about to start.
public struct RunStartedEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var runId: String
    public var playbook: String
    /// The number of steps.
    public var steps: Int

    public init(id: RequestID?, runId: String, playbook: String, steps: Int) {
        self.id = id
        self.event = "run_started"
        self.runId = runId
        self.playbook = playbook
        self.steps = steps
    }

    enum CodingKeys: String, CodingKey {
        case id, event, playbook, steps
        case runId = "run_id"
    }
}

/// What became of one step of a run.
public struct PlaybookStepOutcome: Codable, Sendable, Equatable {
    /// From 0, in the playbook's order.
    public var index: Int
    public var name: String
    /// `started`, `skipped`, `succeeded` or `failed`.
    public var state: String
    /// The step's execution, once it has one.
    public var executionId: String?
    public var exitCode: Int32?
    public var signal: Int32?
    /// Why it failed without an exit status (it could not start), when it did.
    public var error: RunvoyError?

    public init(
        index: Int, name: String, state: String, executionId: String? = nil, exitCode: Int32? = nil,
        signal: Int32? = nil, error: RunvoyError? = nil
    ) {
        self.index = index
        self.name = name
        self.state = state
        self.executionId = executionId
        self.exitCode = exitCode
        self.signal = signal
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case index, name, state, signal, error
        case executionId = "execution_id"
        case exitCode = "exit_code"
    }
}

/// The `step` event of `playbook_run`.
public struct StepEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var runId: String
    public var step: PlaybookStepOutcome

    public init(id: RequestID?, runId: String, step: PlaybookStepOutcome) {
        self.id = id
        self.event = "step"
        self.runId = runId
        self.step = step
    }

    enum CodingKeys: String, CodingKey {
        case id, event, step
        case runId = "run_id"
    }
}

/// Result of `playbook_run`, and a run as `status` shows it.
public struct PlaybookRunResult: Codable, Sendable, Equatable {
    public var runId: String
    public var playbook: String
    /// `running`, `succeeded` (no step failed but under `continue_on_error`) or `failed`.
    public var state: String
    public var callerUid: UInt32?
    public var callerUser: String?
    /// The validated parameter values.
    public var params: [String: String]?
    public var startedAtMs: Int64?
    public var finishedAtMs: Int64?
    /// In the playbook's order; `status` lists the steps that have an execution.
    public var steps: [PlaybookStepOutcome]

    public init(
        runId: String, playbook: String, state: String, steps: [PlaybookStepOutcome], callerUid: UInt32? = nil,
        callerUser: String? = nil, params: [String: String]? = nil, startedAtMs: Int64? = nil,
        finishedAtMs: Int64? = nil
    ) {
        self.runId = runId
        self.playbook = playbook
        self.state = state
        self.steps = steps
        self.callerUid = callerUid
        self.callerUser = callerUser
        self.params = params
        self.startedAtMs = startedAtMs
        self.finishedAtMs = finishedAtMs
    }

    enum CodingKeys: String, CodingKey {
        case playbook, state, params, steps
        case runId = "run_id"
        case callerUid = "caller_uid"
        case callerUser = "caller_user"
        case startedAtMs = "started_at_ms"
        case finishedAtMs = "finished_at_ms"
    }
}
