/// Parameters of `exec`.
public struct ExecParams: Codable, Sendable, Equatable {
    /// The command and its arguments. `argv[0]` is looked up in the executor's PATH unless it contains a slash.
    public var argv: [String]
    /// The executor to run on; the default executor when absent.
    public var executor: String?
    /// Extra environment variables; each name must be allowed by the executor's `allow_env`.
    public var env: [String: String]?
    /// Timeout in milliseconds; the executor's default when absent, never more than its maximum.
    public var timeoutMs: Int64?
    /// Reply with the execution id at once and stream nothing.
    public var detach: Bool?
    /// Kill the command's process group if this connection closes before it ends.
    public var killOnDisconnect: Bool?
    /// Whether the client will send standard input with `stdin` requests. When false the command reads /dev/null.
    public var stdin: Bool?
    /// Send output as binary frames (top bit of the length set) instead of base64 `output` events.
    public var binaryOutput: Bool?
    /// Run the command on a pseudo-terminal of this size instead of pipes.
    public var tty: TerminalParams?
    /// Wait in the queue when the executor's `concurrency`, the daemon's ceiling or the caller's share is full,
    /// instead of being refused with `busy` (the default, for clients that do not show queue events).
    public var wait: Bool?
    /// With `wait`: give up after this many milliseconds in the queue (`queue_timeout`); no bound when absent.
    public var waitTimeoutMs: Int64?
    /// Why the command is run: shown to approvers and audited (at most 1024 bytes, no control characters).
    public var reason: String?
    /// Run at once a command that needs approval, where the executor's `break_glass` admits the caller (a
    /// reason is required; audited at priority 2 and listed for review).
    public var breakGlass: Bool?

    public init(
        argv: [String], executor: String? = nil, env: [String: String]? = nil, timeoutMs: Int64? = nil,
        detach: Bool? = nil, killOnDisconnect: Bool? = nil, stdin: Bool? = nil, binaryOutput: Bool? = nil,
        tty: TerminalParams? = nil, wait: Bool? = nil, waitTimeoutMs: Int64? = nil
    ) {
        self.tty = tty
        self.wait = wait
        self.waitTimeoutMs = waitTimeoutMs
        self.argv = argv
        self.executor = executor
        self.env = env
        self.timeoutMs = timeoutMs
        self.detach = detach
        self.killOnDisconnect = killOnDisconnect
        self.stdin = stdin
        self.binaryOutput = binaryOutput
    }

    enum CodingKeys: String, CodingKey {
        case argv, executor, env, detach, stdin, tty, wait
        case timeoutMs = "timeout_ms"
        case waitTimeoutMs = "wait_timeout_ms"
        case killOnDisconnect = "kill_on_disconnect"
        case binaryOutput = "binary_output"
        case reason
        case breakGlass = "break_glass"
    }
}

/// The terminal `exec` asks for (`tty`), and a new window size (`resize`).
public struct TerminalParams: Codable, Sendable, Equatable {
    /// The window, in character cells: 1 to 10000 each.
    public var rows: Int
    public var cols: Int
    /// The client's `TERM`; passed to the command only when the executor's `allow_env` allows `TERM`.
    public var term: String?
    /// `resize` only: the execution to resize, when it is not the one attached to this connection.
    public var executionId: String?

    public init(rows: Int, cols: Int, term: String? = nil, executionId: String? = nil) {
        self.rows = rows
        self.cols = cols
        self.term = term
        self.executionId = executionId
    }

    enum CodingKeys: String, CodingKey {
        case rows, cols, term
        case executionId = "execution_id"
    }

    /// Rows and columns the daemon accepts.
    public static let sizes = 1...10000
}

/// Result of `resize`.
public struct ResizeResult: Codable, Sendable, Equatable {
    public var rows: Int
    public var cols: Int
    /// false once the command has ended.
    public var applied: Bool

    public init(rows: Int, cols: Int, applied: Bool) {
        self.rows = rows
        self.cols = cols
        self.applied = applied
    }
}

/// The `started` event of `exec`.
public struct StartedEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var executionId: String
    public var executor: String
    public var runAs: String
    public var pid: Int32

    public init(id: RequestID?, executionId: String, executor: String, runAs: String, pid: Int32) {
        self.id = id
        self.event = "started"
        self.executionId = executionId
        self.executor = executor
        self.runAs = runAs
        self.pid = pid
    }

    enum CodingKeys: String, CodingKey {
        case id, event, executor, pid
        case executionId = "execution_id"
        case runAs = "run_as"
    }
}

/// The `exit` event of `exec`: the last frame of an execution.
public struct ExitEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var executionId: String
    /// The exit code when the command exited normally.
    public var exitCode: Int32?
    /// The signal number when a signal ended the command.
    public var signal: Int32?
    /// Whether the daemon ended the command because its timeout expired.
    public var timedOut: Bool
    public var durationUsec: Int64

    public init(
        id: RequestID?, executionId: String, exitCode: Int32?, signal: Int32?, timedOut: Bool, durationUsec: Int64
    ) {
        self.id = id
        self.event = "exit"
        self.executionId = executionId
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.durationUsec = durationUsec
    }

    enum CodingKeys: String, CodingKey {
        case id, event, signal
        case executionId = "execution_id"
        case exitCode = "exit_code"
        case timedOut = "timed_out"
        case durationUsec = "duration_usec"
    }

    /// Writes `exit_code` and `signal` always, one of them as null, so clients can index both.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(event, forKey: .event)
        try container.encode(executionId, forKey: .executionId)
        try container.encode(exitCode, forKey: .exitCode)
        try container.encode(signal, forKey: .signal)
        try container.encode(timedOut, forKey: .timedOut)
        try container.encode(durationUsec, forKey: .durationUsec)
    }
}

/// Result of a detached `exec`.
public struct DetachedResult: Codable, Sendable, Equatable {
    public var executionId: String
    /// The command's pid; absent while it waits for approval.
    public var pid: Int32?
    /// `awaiting_approval` when it waits for approval (it runs once approved); absent when it runs.
    public var state: String?

    public init(executionId: String, pid: Int32?, state: String? = nil) {
        self.executionId = executionId
        self.pid = pid
        self.state = state
    }

    enum CodingKeys: String, CodingKey {
        case pid, state
        case executionId = "execution_id"
    }
}

/// Parameters of `stdin`.
public struct StdinParams: Codable, Sendable, Equatable {
    /// Base64 bytes to write to the command's standard input.
    public var data: String?
    /// Close the command's standard input after `data`, if any.
    public var eof: Bool?
    /// The execution this connection is attached to as its writer (`attach` with `write`), when it is not the
    /// one started on this connection. Such a writer cannot close the command's input (`eof`).
    public var executionId: String?

    public init(data: String?, eof: Bool?, executionId: String? = nil) {
        self.data = data
        self.eof = eof
        self.executionId = executionId
    }

    enum CodingKeys: String, CodingKey {
        case data, eof
        case executionId = "execution_id"
    }
}

/// Parameters of `signal`.
public struct SignalParams: Codable, Sendable, Equatable {
    /// A signal name (`INT`, `SIGTERM`) or number.
    public var signal: String
    /// The execution to signal; the one attached to this connection when absent. Only the caller who started
    /// it (or root) may signal an execution this way.
    public var executionId: String?

    public init(signal: String, executionId: String? = nil) {
        self.signal = signal
        self.executionId = executionId
    }

    enum CodingKeys: String, CodingKey {
        case signal
        case executionId = "execution_id"
    }

    /// `signal` is a name or a number, as a JSON string or a JSON integer.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        signal = try SignalText.decode(c, .signal)
        executionId = try c.decodeIfPresent(String.self, forKey: .executionId)
    }
}

/// Result of `signal`.
public struct SignalResult: Codable, Sendable, Equatable {
    public var signal: Int32
    public var delivered: Bool

    public init(signal: Int32, delivered: Bool) {
        self.signal = signal
        self.delivered = delivered
    }
}
