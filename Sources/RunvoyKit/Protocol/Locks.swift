/// Result of `locks`: every named lock the configuration declares or an execution holds or waits for, by name.
public struct LocksResult: Codable, Sendable, Equatable {
    public var locks: [LockInfo]

    public init(locks: [LockInfo]) {
        self.locks = locks
    }
}

/// One named lock: how it is held now, by whom, and who waits for it.
public struct LockInfo: Codable, Sendable, Equatable {
    public var name: String
    /// `free`, `exclusive` or `shared`.
    public var mode: String
    /// The executors that declare it, sorted.
    public var executors: [String]
    public var holders: [LockHolder]
    /// Oldest first.
    public var waiters: [LockHolder]

    public init(name: String, mode: String, executors: [String], holders: [LockHolder], waiters: [LockHolder]) {
        self.name = name
        self.mode = mode
        self.executors = executors
        self.holders = holders
        self.waiters = waiters
    }
}

/// An execution that holds, or waits for, a lock. Another user's execution, for a caller who may not see it (the
/// permission `view_all`), has no `execution_id` and no `uid`, and `user` is `another user`; its `executor` is
/// nil when the caller may not use that executor.
public struct LockHolder: Codable, Sendable, Equatable {
    /// Nil while the execution is still being started (it has no id yet), or when it is hidden.
    public var executionId: String?
    public var user: String
    public var uid: UInt32?
    public var executor: String?
    /// Whether it holds (or wants) the lock shared.
    public var shared: Bool
    /// Wall-clock milliseconds since it holds (or waits); nil while it is being started.
    public var sinceMs: Int64?

    public init(
        executionId: String?, user: String, uid: UInt32?, executor: String?, shared: Bool, sinceMs: Int64?
    ) {
        self.executionId = executionId
        self.user = user
        self.uid = uid
        self.executor = executor
        self.shared = shared
        self.sinceMs = sinceMs
    }

    enum CodingKeys: String, CodingKey {
        case user, uid, executor, shared
        case executionId = "execution_id"
        case sinceMs = "since_ms"
    }

    /// Every member is written, `null` where there is no value.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(executionId, forKey: .executionId)
        try c.encode(user, forKey: .user)
        try c.encode(uid, forKey: .uid)
        try c.encode(executor, forKey: .executor)
        try c.encode(shared, forKey: .shared)
        try c.encode(sinceMs, forKey: .sinceMs)
    }
}
