/// A temporary grant as replies show it (`grant`, `revoke`, `users`, `capabilities`).
public struct GrantInfo: Codable, Sendable, Equatable {
    public var id: String
    public var user: String
    public var uid: UInt32
    /// Exactly one of `role` and `executor`.
    public var role: String?
    public var executor: String?
    public var expiresAtMs: Int64
    public var createdAtMs: Int64
    public var grantedBy: String
    public var grantedByUid: UInt32
    public var reason: String
    /// The request for approval it was made for (`request_grant`), if any.
    public var requestId: String?
    /// `revoked` or `expired` once it ended; nil while it is in force.
    public var ended: String?

    public init(
        id: String, user: String, uid: UInt32, role: String?, executor: String?, expiresAtMs: Int64,
        createdAtMs: Int64, grantedBy: String, grantedByUid: UInt32, reason: String, requestId: String? = nil,
        ended: String? = nil
    ) {
        self.id = id
        self.user = user
        self.uid = uid
        self.role = role
        self.executor = executor
        self.expiresAtMs = expiresAtMs
        self.createdAtMs = createdAtMs
        self.grantedBy = grantedBy
        self.grantedByUid = grantedByUid
        self.reason = reason
        self.requestId = requestId
        self.ended = ended
    }

    /// `role operator`, `executor deploy`.
    public var subject: String {
        if let role { return "role \(role)" }
        return "executor \(executor ?? "?")"
    }

    enum CodingKeys: String, CodingKey {
        case id, user, uid, role, executor, reason, ended
        case expiresAtMs = "expires_at_ms"
        case createdAtMs = "created_at_ms"
        case grantedBy = "granted_by"
        case grantedByUid = "granted_by_uid"
        case requestId = "request_id"
    }
}

/// Parameters of `grant`: a role or an executor (exactly one) for `user`, for `forMs` milliseconds.
public struct GrantParams: Codable, Sendable, Equatable {
    public var user: String
    public var role: String?
    public var executor: String?
    public var forMs: Int64
    public var reason: String

    public init(user: String, role: String? = nil, executor: String? = nil, forMs: Int64, reason: String) {
        self.user = user
        self.role = role
        self.executor = executor
        self.forMs = forMs
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case user, role, executor, reason
        case forMs = "for_ms"
    }
}

/// Parameters of `revoke`.
public struct RevokeParams: Codable, Sendable, Equatable {
    public var grantId: String
    public var comment: String?

    public init(grantId: String, comment: String? = nil) {
        self.grantId = grantId
        self.comment = comment
    }

    enum CodingKeys: String, CodingKey {
        case comment
        case grantId = "grant_id"
    }
}

/// Result of `grant` and `revoke`.
public struct GrantResult: Codable, Sendable, Equatable {
    public var grant: GrantInfo

    public init(grant: GrantInfo) {
        self.grant = grant
    }
}

/// Parameters of `request_grant`: ask for a role or an executor (exactly one) for `forMs` milliseconds. It waits
/// for approval (`approval` events, then the reply), or, with `detach`, replies at once and the grant is made when
/// approved.
public struct RequestGrantParams: Codable, Sendable, Equatable {
    public var role: String?
    public var executor: String?
    public var forMs: Int64
    public var reason: String
    public var detach: Bool?

    public init(role: String? = nil, executor: String? = nil, forMs: Int64, reason: String, detach: Bool? = nil) {
        self.role = role
        self.executor = executor
        self.forMs = forMs
        self.reason = reason
        self.detach = detach
    }

    enum CodingKeys: String, CodingKey {
        case role, executor, reason, detach
        case forMs = "for_ms"
    }
}

/// Result of `request_grant`: the request for approval (`id`, as `approvals` lists it) and, once it was approved,
/// the grant it made.
public struct RequestGrantResult: Codable, Sendable, Equatable {
    public var id: String
    public var state: ApprovalState
    public var required: Int
    public var approvers: ApproverList
    public var expiresAtMs: Int64
    public var grant: GrantInfo?

    public init(
        id: String, state: ApprovalState, required: Int, approvers: ApproverList, expiresAtMs: Int64,
        grant: GrantInfo? = nil
    ) {
        self.id = id
        self.state = state
        self.required = required
        self.approvers = approvers
        self.expiresAtMs = expiresAtMs
        self.grant = grant
    }

    enum CodingKeys: String, CodingKey {
        case id, state, required, approvers, grant
        case expiresAtMs = "expires_at_ms"
    }
}
