/// Parameters of `list`. Every filter is optional; results are newest first (by creation time, then id).
public struct ListParams: Codable, Sendable, Equatable {
    /// At most this many executions (default 50, at most 1000).
    public var limit: Int?
    /// Only executions in one of these states.
    public var status: [ExecutionStatus]?
    /// Only executions started by this user name (or `#UID`).
    public var user: String?
    /// Only executions on this executor.
    public var executor: String?
    /// Only executions created at or after this time (milliseconds since the epoch).
    public var sinceMs: Int64?
    /// Only executions listed after this one (an execution id: the last of the previous page).
    public var before: String?
    /// Only the steps of this playbook run.
    public var runId: String?

    public init(
        limit: Int? = nil, status: [ExecutionStatus]? = nil, user: String? = nil, executor: String? = nil,
        sinceMs: Int64? = nil, before: String? = nil, runId: String? = nil
    ) {
        self.runId = runId
        self.limit = limit
        self.status = status
        self.user = user
        self.executor = executor
        self.sinceMs = sinceMs
        self.before = before
    }

    enum CodingKeys: String, CodingKey {
        case limit, status, user, executor, before
        case sinceMs = "since_ms"
        case runId = "run_id"
    }

    /// The default and largest `limit`.
    public static let defaultLimit = 50
    public static let maximumLimit = 1000
}

/// Result of `list`.
public struct ListResult: Codable, Sendable, Equatable {
    public var executions: [ExecutionInfo]
    /// Whether more executions match than the reply holds (it stopped at `limit` or at its byte budget): ask
    /// again with `before` set to the last one's id.
    public var more: Bool

    public init(executions: [ExecutionInfo], more: Bool = false) {
        self.executions = executions
        self.more = more
    }

    enum CodingKeys: String, CodingKey {
        case executions, more
    }

    /// `more` is false when absent (a daemon from before paging sends every execution up to `limit`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        executions = try c.decode([ExecutionInfo].self, forKey: .executions)
        more = try c.decodeIfPresent(Bool.self, forKey: .more) ?? false
    }
}

/// Parameters of `status`, `logs` and `kill`: the execution they are about.
public struct ExecutionRef: Codable, Sendable, Equatable {
    public var executionId: String

    public init(executionId: String) { self.executionId = executionId }

    enum CodingKeys: String, CodingKey {
        case executionId = "execution_id"
    }
}

/// Parameters of `logs`.
public struct LogsParams: Codable, Sendable, Equatable {
    public var executionId: String
    /// Keep streaming live output until the execution ends (otherwise: what is stored now, then the reply).
    public var follow: Bool?
    /// Also send the recorded input (`output` events with stream `stdin`), where the executor records it.
    public var input: Bool?

    public init(executionId: String, follow: Bool? = nil, input: Bool? = nil) {
        self.executionId = executionId
        self.follow = follow
        self.input = input
    }

    enum CodingKeys: String, CodingKey {
        case follow, input
        case executionId = "execution_id"
    }
}

/// Parameters of `attach`.
public struct AttachParams: Codable, Sendable, Equatable {
    public var executionId: String
    /// Also take the execution's one writer slot: `stdin` with this `execution_id` then goes to the command (only
    /// the user who started it; one writer at a time).
    public var write: Bool?
    /// Send output as binary frames instead of base64 `output` events (as `exec` does; `t_usec` is not sent then).
    public var binaryOutput: Bool?

    public init(executionId: String, write: Bool? = nil, binaryOutput: Bool? = nil) {
        self.executionId = executionId
        self.write = write
        self.binaryOutput = binaryOutput
    }

    enum CodingKeys: String, CodingKey {
        case write
        case executionId = "execution_id"
        case binaryOutput = "binary_output"
    }
}

/// The first event of `attach`: what the watcher is attached to, before any output.
public struct AttachedEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var executionId: String
    /// Whether the execution runs on a terminal (`exec -t`): its output is one stream of terminal bytes.
    public var terminal: Bool
    /// Whether this connection holds the writer slot (`stdin` with this `execution_id` reaches the command).
    public var write: Bool

    public init(id: RequestID?, executionId: String, terminal: Bool, write: Bool) {
        self.id = id
        self.event = "attached"
        self.executionId = executionId
        self.terminal = terminal
        self.write = write
    }

    enum CodingKeys: String, CodingKey {
        case id, event, terminal, write
        case executionId = "execution_id"
    }
}

/// An `output` event of `logs`: one stored chunk, with its time since the execution started.
public struct LogChunkEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var stream: OutputStreamKind
    /// Base64 of the chunk's bytes.
    public var data: String
    /// Microseconds from the start of the execution to when the chunk was read from the command.
    public var tUsec: Int64

    public init(id: RequestID?, stream: OutputStreamKind, data: String, tUsec: Int64) {
        self.id = id
        self.event = "output"
        self.stream = stream
        self.data = data
        self.tUsec = tUsec
    }

    enum CodingKeys: String, CodingKey {
        case id, event, stream, data
        case tUsec = "t_usec"
    }
}

/// A `dropped` event of `logs`: this many bytes of output were not stored (the per-execution cap), here.
public struct DroppedEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var bytes: Int64

    public init(id: RequestID?, bytes: Int64) {
        self.id = id
        self.event = "dropped"
        self.bytes = bytes
    }
}

/// Result of `logs`, after the last chunk: the execution as it stands at the end of the stream.
public struct LogsResult: Codable, Sendable, Equatable {
    public var execution: ExecutionInfo

    public init(execution: ExecutionInfo) { self.execution = execution }
}

/// Parameters of `kill`.
public struct KillParams: Codable, Sendable, Equatable {
    public var executionId: String
    /// A signal name or number; TERM when absent.
    public var signal: String?

    public init(executionId: String, signal: String? = nil) {
        self.executionId = executionId
        self.signal = signal
    }

    enum CodingKeys: String, CodingKey {
        case signal
        case executionId = "execution_id"
    }

    /// `signal` is a name or a number, as a JSON string or a JSON integer.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        executionId = try c.decode(String.self, forKey: .executionId)
        if c.contains(.signal), try !c.decodeNil(forKey: .signal) {
            signal = try SignalText.decode(c, .signal)
        } else {
            signal = nil
        }
    }
}

/// A signal given as a name (`"TERM"`) or a number (`15` or `"15"`), kept as text for `SignalName.parse`.
enum SignalText {
    static func decode<Key: CodingKey>(_ c: KeyedDecodingContainer<Key>, _ key: Key) throws -> String {
        if let number = try? c.decode(Int.self, forKey: key) { return String(number) }
        return try c.decode(String.self, forKey: key)
    }
}

/// Result of `kill`.
public struct KillResult: Codable, Sendable, Equatable {
    public var executionId: String
    public var signal: Int32
    /// Whether the signal reached the process group (false when the command ended meanwhile).
    public var delivered: Bool

    public init(executionId: String, signal: Int32, delivered: Bool) {
        self.executionId = executionId
        self.signal = signal
        self.delivered = delivered
    }

    enum CodingKeys: String, CodingKey {
        case signal, delivered
        case executionId = "execution_id"
    }
}
