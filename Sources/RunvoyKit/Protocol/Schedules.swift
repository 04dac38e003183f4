/// Result of `schedules`: the playbooks' schedules the caller may see, by playbook name.
public struct SchedulesResult: Codable, Sendable, Equatable {
    public var schedules: [ScheduleInfo]

    public init(schedules: [ScheduleInfo]) {
        self.schedules = schedules
    }
}

/// One playbook's schedule: its systemd timer, and what systemd says of it.
public struct ScheduleInfo: Codable, Sendable, Equatable {
    public var playbook: String
    /// The systemd calendar expression (`OnCalendar=`).
    public var calendar: String
    /// The user the scheduled runs are made as.
    public var runAsCaller: String
    /// `active` (its timer waits for the next time), `inactive` (no timer: no systemd here, or its calendar has no
    /// later time) or `failed` (systemd refused the timer, or it could not be read).
    public var state: String
    /// Why it is inactive or failed; nil when active.
    public var reason: String?
    /// The timer's unit name (`runvoy-schedule-<playbook>.timer`).
    public var unit: String
    /// When it fires next (Unix time, milliseconds); nil when it will not.
    public var nextRunMs: Int64?
    /// When it last fired (Unix time, milliseconds); nil when it has not since its timer was made.
    public var lastRunMs: Int64?
    /// How its last run ended, as systemd says of the service: `success`, `exit-code` (with `last_status`), ...;
    /// `running` while it runs; nil when it has not run.
    public var lastResult: String?
    /// The exit status of runvoyctl in its last run (that of the run, or 125 when runvoyd refused it).
    public var lastStatus: Int32?

    public init(
        playbook: String, calendar: String, runAsCaller: String, state: String, reason: String?, unit: String,
        nextRunMs: Int64? = nil, lastRunMs: Int64? = nil, lastResult: String? = nil, lastStatus: Int32? = nil
    ) {
        self.playbook = playbook
        self.calendar = calendar
        self.runAsCaller = runAsCaller
        self.state = state
        self.reason = reason
        self.unit = unit
        self.nextRunMs = nextRunMs
        self.lastRunMs = lastRunMs
        self.lastResult = lastResult
        self.lastStatus = lastStatus
    }

    enum CodingKeys: String, CodingKey {
        case playbook, calendar, state, reason, unit
        case runAsCaller = "run_as_caller"
        case nextRunMs = "next_run_ms"
        case lastRunMs = "last_run_ms"
        case lastResult = "last_result"
        case lastStatus = "last_status"
    }

    /// Every member is written, `null` where there is no value.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(playbook, forKey: .playbook)
        try c.encode(calendar, forKey: .calendar)
        try c.encode(runAsCaller, forKey: .runAsCaller)
        try c.encode(state, forKey: .state)
        try c.encode(reason, forKey: .reason)
        try c.encode(unit, forKey: .unit)
        try c.encode(nextRunMs, forKey: .nextRunMs)
        try c.encode(lastRunMs, forKey: .lastRunMs)
        try c.encode(lastResult, forKey: .lastResult)
        try c.encode(lastStatus, forKey: .lastStatus)
    }
}
