/// The `queued` event of `exec` with `wait`: the execution waits in the queue. Sent when it is queued and
/// again whenever its place or what it waits for changes (checked once a second).
public struct QueuedEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var executionId: String
    public var executor: String
    /// 1 for the first in line: one more than the waiters for the same executor queued before it.
    public var position: Int
    /// What is full: `concurrency` (the executor's), `executions` (the daemon's ceiling, or all but the
    /// administrators' reserve), `user_share` (the caller's own share), `lock`, or `turn` (it would fit, but an
    /// earlier waiter of the same user goes first).
    public var waitingFor: String
    /// The limit that is full (`concurrency` N, `max_executions`, the caller's share); nil when none applies.
    public var limit: Int?
    /// Who holds what it waits for, longest running first (at most 3).
    public var holders: [QueueHolder]
    /// How long it has waited.
    public var waitedMs: Int64

    public init(
        id: RequestID?, executionId: String, executor: String, position: Int, waitingFor: String, limit: Int?,
        holders: [QueueHolder], waitedMs: Int64
    ) {
        self.id = id
        self.event = "queued"
        self.executionId = executionId
        self.executor = executor
        self.position = position
        self.waitingFor = waitingFor
        self.limit = limit
        self.holders = holders
        self.waitedMs = waitedMs
    }

    enum CodingKeys: String, CodingKey {
        case id, event, executor, position, limit, holders
        case executionId = "execution_id"
        case waitingFor = "waiting_for"
        case waitedMs = "waited_ms"
    }
}

/// A running execution that holds what a waiter waits for. Another user's execution, for a caller who may not
/// see it (the permission `view_all`), has no `execution_id` nor `user`.
public struct QueueHolder: Codable, Sendable, Equatable {
    public var executionId: String?
    public var user: String?
    public var runningMs: Int64

    public init(executionId: String?, user: String?, runningMs: Int64) {
        self.executionId = executionId
        self.user = user
        self.runningMs = runningMs
    }

    enum CodingKeys: String, CodingKey {
        case user
        case executionId = "execution_id"
        case runningMs = "running_ms"
    }
}

/// Parameters of `cancel`.
public struct CancelParams: Codable, Sendable, Equatable {
    public var executionId: String

    public init(executionId: String) {
        self.executionId = executionId
    }

    enum CodingKeys: String, CodingKey {
        case executionId = "execution_id"
    }
}

/// Result of `cancel`.
public struct CancelResult: Codable, Sendable, Equatable {
    public var executionId: String
    /// Always true: an execution that no longer waits is `invalid_state`.
    public var cancelled: Bool

    public init(executionId: String, cancelled: Bool) {
        self.executionId = executionId
        self.cancelled = cancelled
    }

    enum CodingKeys: String, CodingKey {
        case cancelled
        case executionId = "execution_id"
    }
}
