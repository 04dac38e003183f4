/// One run of a hook, as `status` shows it with its execution (docs/PROTOCOL.md, "Hooks").
public struct HookRunInfo: Codable, Sendable, Equatable {
    /// The hook's name and event (`pre_exec`, `post_exec`, `on_approval_request`, `on_break_glass`).
    public var hook: String
    public var event: String
    /// The user it ran as.
    public var user: String
    public var startedAtMs: Int64
    public var durationUsec: Int64
    public var exitCode: Int32?
    public var signal: Int32?
    public var timedOut: Bool
    /// `ok`, `veto` or `error`.
    public var outcome: String
    /// A veto's reason (the first line of its output, cleaned) or what went wrong; nil when it was ok.
    public var reason: String?
    /// Its stdout and stderr together, up to 64 KiB, as UTF-8 (invalid bytes replaced).
    public var output: String
    /// Output bytes beyond the 64 KiB, counted and not kept.
    public var outputDropped: Int64
    /// The request for approval it ran for (`on_approval_request`, `on_break_glass`), if any.
    public var approvalId: String?

    public init(
        hook: String, event: String, user: String, startedAtMs: Int64, durationUsec: Int64, exitCode: Int32?,
        signal: Int32?, timedOut: Bool, outcome: String, reason: String?, output: String, outputDropped: Int64,
        approvalId: String?
    ) {
        self.hook = hook
        self.event = event
        self.user = user
        self.startedAtMs = startedAtMs
        self.durationUsec = durationUsec
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.outcome = outcome
        self.reason = reason
        self.output = output
        self.outputDropped = outputDropped
        self.approvalId = approvalId
    }

    enum CodingKeys: String, CodingKey {
        case hook, event, user, signal, outcome, reason, output
        case startedAtMs = "started_at_ms"
        case durationUsec = "duration_usec"
        case exitCode = "exit_code"
        case timedOut = "timed_out"
        case outputDropped = "output_dropped"
        case approvalId = "approval_id"
    }
}
