/// An administrator's playbook: a file `playbooks/NAME.yaml` beside the configuration file, read with it (and
/// validated by `--check-config`, reloaded with it). Its steps run on executors, each step's argv checked by that
/// executor's command rules like any `exec`, with the values of typed parameters filling whole arguments (or the
/// documented part of one), never parsed by a shell.
public struct PlaybookConfig: Sendable, Equatable {
    /// The file's name without `.yaml`: spelt like an executor's name.
    public var name: String
    public var description: String?
    /// Who may run it besides administrators (`users`, `groups`, `roles`, as executors have).
    public var access: AccessList = AccessList()
    /// In file order; names are unique.
    public var parameters: [PlaybookParameter] = []
    /// In file order; at least one.
    public var steps: [PlaybookStep]
    /// Named locks the run holds from its first step to its last, sorted by name (as an executor's `locks`).
    public var locks: [ExecutorLock] = []
    /// Approvals the run needs before its first step; nil needs none (each step's own executor rules may still ask).
    public var approval: ApprovalPolicy?
    /// When a systemd timer runs it on its own.
    public var schedule: PlaybookSchedule?
    /// The file it came from, and the line of its top.
    public var file: String
    public var line: Int

    public init(name: String, steps: [PlaybookStep], file: String, line: Int = 1) {
        self.name = name
        self.steps = steps
        self.file = file
        self.line = line
    }

    public func parameter(named name: String) -> PlaybookParameter? {
        parameters.first { $0.name == name }
    }
}

/// `schedule:` of a playbook: a systemd calendar expression and whom the run counts as.
public struct PlaybookSchedule: Sendable, Equatable {
    /// A systemd calendar expression (`OnCalendar=`), validated as `systemd-analyze calendar` does.
    public var calendar: String
    /// The user the scheduled run is made as: policy, approvals, locks and audit apply as for that person.
    public var runAsCaller: String
    /// Parameter values, validated like a person's `--param` (secret-free).
    public var params: [String: String] = [:]
    public var line: Int

    public init(calendar: String, runAsCaller: String, params: [String: String] = [:], line: Int) {
        self.calendar = calendar
        self.runAsCaller = runAsCaller
        self.params = params
        self.line = line
    }
}
