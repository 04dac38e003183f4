/// A hook: a command the daemon runs at a point of an execution's life (`hooks:` at the top level and
/// `executors.NAME.hooks`), as a configured user, with a timeout, the execution's metadata as JSON on its stdin.
public struct HookConfig: Sendable, Equatable {
    /// Unique within its list; spelt like an executor's name.
    public var name: String
    public var event: HookEvent
    /// The argv; `command[0]` is an absolute path.
    public var command: [String]
    /// The user the hook runs as (root only if written).
    public var user: String
    /// The group it runs as; nil for the user's primary group.
    public var group: String?
    public var timeout: Duration = HookConfig.defaultTimeout
    /// What a failure (a spawn error, a signal, the timeout) means. nil takes the event's default.
    public var onErrorWritten: HookErrorPolicy?
    /// Line of the hook in the file.
    public var line: Int

    public static let defaultTimeout: Duration = .seconds(10)
    public static let timeoutBound: ClosedRange<Duration> = .seconds(1)...Duration.seconds(600)

    public init(name: String, event: HookEvent, command: [String], user: String, line: Int = 0) {
        self.name = name
        self.event = event
        self.command = command
        self.user = user
        self.line = line
    }

    /// What a failure means: as written, else the event's default.
    public var onError: HookErrorPolicy { onErrorWritten ?? event.defaultOnError }
}

/// The points of an execution's life a hook runs at.
public enum HookEvent: String, Sendable, Equatable, CaseIterable {
    /// Before the command starts (after its history row is written, before its secrets are injected): may veto.
    case preExec = "pre_exec"
    /// After the command ends, with its result.
    case postExec = "post_exec"
    /// When a request waiting for approval is created: may veto (the request is refused).
    case onApprovalRequest = "on_approval_request"
    /// When a command runs at once with `--break-glass`.
    case onBreakGlass = "on_break_glass"

    /// Whether a hook's non-zero exit refuses what is about to happen.
    public var mayVeto: Bool { self == .preExec || self == .onApprovalRequest }

    /// What a failure means when `on_error` is not written: deny where the hook may veto, else allow.
    public var defaultOnError: HookErrorPolicy { mayVeto ? .deny : .allow }
}

/// `on_error`: what a hook that fails or times out means.
public enum HookErrorPolicy: String, Sendable, Equatable {
    case deny
    case allow
}
