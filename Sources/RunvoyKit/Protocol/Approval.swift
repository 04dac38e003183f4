/// Where a request for approval is in its life.
public enum ApprovalState: String, Codable, Sendable, CaseIterable {
    /// Waiting for its approvals.
    case pending
    /// Approved: its command is about to be queued or started.
    case approved
    /// Its command was queued or started: the approval is spent.
    case fulfilled
    /// Someone denied it; it never runs.
    case denied
    /// No decision before its deadline; it never runs.
    case expired
    /// Its requester took it back (or its client, which it needed, went); it never runs.
    case withdrawn
    /// Approved, but what would run (or the policy) changed before it started; it never runs.
    case invalidated
    /// A break-glass run, not reviewed yet.
    case breakGlass = "break_glass"
    /// A break-glass run someone reviewed.
    case reviewed

    /// Whether nothing more can happen to it.
    public var isFinal: Bool {
        switch self {
        case .pending, .approved, .breakGlass: false
        default: true
        }
    }
}

/// Who may approve: users, groups, roles (as an executor's `allow` writes them).
public struct ApproverList: Codable, Sendable, Equatable, Hashable {
    public var users: [String]
    public var groups: [String]
    public var roles: [String]

    public init(users: [String] = [], groups: [String] = [], roles: [String] = []) {
        self.users = users
        self.groups = groups
        self.roles = roles
    }

    /// "roles admin; groups sre"; "no one" when empty.
    public var display: String {
        var parts: [String] = []
        if !roles.isEmpty { parts.append("roles " + roles.joined(separator: ", ")) }
        if !groups.isEmpty { parts.append("groups " + groups.joined(separator: ", ")) }
        if !users.isEmpty { parts.append("users " + users.joined(separator: ", ")) }
        return parts.isEmpty ? "no one" : parts.joined(separator: "; ")
    }
}

/// One person's answer to a request.
public struct ApprovalAnswer: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case approve, deny, review
    }

    public var uid: UInt32
    public var user: String
    public var answer: Kind
    /// The digest the answer was given to.
    public var digest: String
    public var comment: String?
    public var atMs: Int64

    public init(uid: UInt32, user: String, answer: Kind, digest: String, comment: String?, atMs: Int64) {
        self.uid = uid
        self.user = user
        self.answer = answer
        self.digest = digest
        self.comment = comment
        self.atMs = atMs
    }

    enum CodingKeys: String, CodingKey {
        case uid, user, answer, digest, comment
        case atMs = "at_ms"
    }
}

/// A request for approval as `approvals` lists it: what would run, who asked and why, and who answered. A reply
/// carries at most a budget of its `argv` and `envKeys` (docs/PROTOCOL.md, "approvals"); `argvTruncated` and
/// `envKeysTruncated` then say so, and an approver has not seen the whole request.
public struct ApprovalInfo: Codable, Sendable, Equatable {
    public var id: String
    /// `exec` or `break_glass`.
    public var kind: String
    public var state: ApprovalState
    public var requesterUid: UInt32
    public var requester: String
    public var executor: String
    public var runAs: String
    public var command: String
    public var argv: [String]
    /// `argv` is only the start of the request's argv.
    public var argvTruncated: Bool
    public var cwd: String
    /// The names of the variables of the planned environment (never their values).
    public var envKeys: [String]
    /// `envKeys` are only the first of the names.
    public var envKeysTruncated: Bool
    /// The names of the secrets the command will receive.
    public var secrets: [String]
    public var terminal: Bool
    /// Whether the command reads its requester's standard input (a pipe): what it does may then come from what
    /// its requester writes after the approval, which nobody approves. False when absent (daemons before it).
    public var stdin: Bool
    /// Its timeout; nil when it has none.
    public var timeoutMs: Int64?
    public var reason: String?
    public var createdAtMs: Int64
    public var expiresAtMs: Int64
    public var required: Int
    public var approvers: ApproverList
    public var answers: [ApprovalAnswer]
    public var digest: String
    /// The decision's reason once it has one ("denied by bob: not now").
    public var decision: String?
    /// Whether the caller of `approvals` may answer it now.
    public var mayAnswer: Bool
    /// For a request of kind `grant`: what it asks for (`role` or `executor`, and `for_ms`).
    public var grant: GrantRequestSummary?

    public init(
        id: String, kind: String, state: ApprovalState, requesterUid: UInt32, requester: String, executor: String,
        runAs: String, command: String, argv: [String], cwd: String, envKeys: [String], secrets: [String],
        terminal: Bool, timeoutMs: Int64?, reason: String?, createdAtMs: Int64, expiresAtMs: Int64, required: Int,
        approvers: ApproverList, answers: [ApprovalAnswer], digest: String, decision: String?, mayAnswer: Bool,
        argvTruncated: Bool = false, envKeysTruncated: Bool = false, stdin: Bool = false
    ) {
        self.id = id
        self.kind = kind
        self.state = state
        self.requesterUid = requesterUid
        self.requester = requester
        self.executor = executor
        self.runAs = runAs
        self.command = command
        self.argv = argv
        self.cwd = cwd
        self.envKeys = envKeys
        self.secrets = secrets
        self.terminal = terminal
        self.stdin = stdin
        self.timeoutMs = timeoutMs
        self.reason = reason
        self.createdAtMs = createdAtMs
        self.expiresAtMs = expiresAtMs
        self.required = required
        self.approvers = approvers
        self.answers = answers
        self.digest = digest
        self.decision = decision
        self.mayAnswer = mayAnswer
        self.argvTruncated = argvTruncated
        self.envKeysTruncated = envKeysTruncated
    }

    /// Whether the request is shown whole: an approver who approves one that is not has not seen all of it.
    public var isWhole: Bool { !argvTruncated && !envKeysTruncated }

    /// How many distinct people approved.
    public var approvals: Int { answers.filter { $0.answer == .approve }.count }

    enum CodingKeys: String, CodingKey {
        case id, kind, state, requester, executor, command, argv, cwd, secrets, terminal, stdin, reason, required
        case approvers
        case answers, digest, decision
        case requesterUid = "requester_uid"
        case runAs = "run_as"
        case envKeys = "env_keys"
        case timeoutMs = "timeout_ms"
        case createdAtMs = "created_at_ms"
        case expiresAtMs = "expires_at_ms"
        case mayAnswer = "may_answer"
        case argvTruncated = "argv_truncated"
        case envKeysTruncated = "env_keys_truncated"
        case grant
    }

    /// Reads every member; `argv_truncated` and `env_keys_truncated` are false when absent (daemons before them
    /// sent the whole request), `stdin` too (daemons before it did not say).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        kind = try c.decode(String.self, forKey: .kind)
        state = try c.decode(ApprovalState.self, forKey: .state)
        requesterUid = try c.decode(UInt32.self, forKey: .requesterUid)
        requester = try c.decode(String.self, forKey: .requester)
        executor = try c.decode(String.self, forKey: .executor)
        runAs = try c.decode(String.self, forKey: .runAs)
        command = try c.decode(String.self, forKey: .command)
        argv = try c.decode([String].self, forKey: .argv)
        argvTruncated = try c.decodeIfPresent(Bool.self, forKey: .argvTruncated) ?? false
        cwd = try c.decode(String.self, forKey: .cwd)
        envKeys = try c.decode([String].self, forKey: .envKeys)
        envKeysTruncated = try c.decodeIfPresent(Bool.self, forKey: .envKeysTruncated) ?? false
        secrets = try c.decode([String].self, forKey: .secrets)
        terminal = try c.decode(Bool.self, forKey: .terminal)
        stdin = try c.decodeIfPresent(Bool.self, forKey: .stdin) ?? false
        timeoutMs = try c.decodeIfPresent(Int64.self, forKey: .timeoutMs)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        createdAtMs = try c.decode(Int64.self, forKey: .createdAtMs)
        expiresAtMs = try c.decode(Int64.self, forKey: .expiresAtMs)
        required = try c.decode(Int.self, forKey: .required)
        approvers = try c.decode(ApproverList.self, forKey: .approvers)
        answers = try c.decode([ApprovalAnswer].self, forKey: .answers)
        digest = try c.decode(String.self, forKey: .digest)
        decision = try c.decodeIfPresent(String.self, forKey: .decision)
        mayAnswer = try c.decode(Bool.self, forKey: .mayAnswer)
        grant = try c.decodeIfPresent(GrantRequestSummary.self, forKey: .grant)
    }
}

/// What a request for a grant asks for, as approvers are shown it.
public struct GrantRequestSummary: Codable, Sendable, Equatable {
    public var role: String?
    public var executor: String?
    public var forMs: Int64

    public init(role: String?, executor: String?, forMs: Int64) {
        self.role = role
        self.executor = executor
        self.forMs = forMs
    }

    /// `role operator for 1h`.
    public var display: String {
        let what = role.map { "role \($0)" } ?? "executor \(executor ?? "?")"
        return "\(what) for \(DurationParser.format(.milliseconds(forMs)))"
    }

    enum CodingKeys: String, CodingKey {
        case role, executor
        case forMs = "for_ms"
    }
}

/// Parameters of `approvals`.
public struct ApprovalsParams: Codable, Sendable, Equatable {
    /// The states to list; `pending` when absent.
    public var state: [ApprovalState]?
    /// One request by id.
    public var id: String?
    /// At most this many, newest first (1-500, 100 by default).
    public var limit: Int?
    /// Only requests listed after this one (the last of the previous reply, whose `more` was true).
    public var before: String?

    public init(state: [ApprovalState]? = nil, id: String? = nil, limit: Int? = nil, before: String? = nil) {
        self.state = state
        self.id = id
        self.limit = limit
        self.before = before
    }

    public static let defaultLimit = 100
    public static let maximumLimit = 500
}

/// Result of `approvals`.
public struct ApprovalsResult: Codable, Sendable, Equatable {
    public var requests: [ApprovalInfo]
    /// Other requests match after the last one (the reply's size or `limit`): ask again with `before` set to it.
    public var more: Bool

    public init(requests: [ApprovalInfo], more: Bool = false) {
        self.requests = requests
        self.more = more
    }

    enum CodingKeys: String, CodingKey {
        case requests, more
    }

    /// `more` is false when absent (daemons before it).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requests = try c.decode([ApprovalInfo].self, forKey: .requests)
        more = try c.decodeIfPresent(Bool.self, forKey: .more) ?? false
    }
}

/// Parameters of `approve`: the digest is the one the approver was shown, so an approval covers only that.
public struct ApproveParams: Codable, Sendable, Equatable {
    public var id: String
    public var digest: String
    public var comment: String?

    public init(id: String, digest: String, comment: String? = nil) {
        self.id = id
        self.digest = digest
        self.comment = comment
    }
}

/// Parameters of `deny`: the comment is required.
public struct DenyParams: Codable, Sendable, Equatable {
    public var id: String
    public var comment: String

    public init(id: String, comment: String) {
        self.id = id
        self.comment = comment
    }
}

/// Result of `approve` and `deny`.
public struct ApprovalAnswerResult: Codable, Sendable, Equatable {
    public var id: String
    public var state: ApprovalState
    public var approvals: Int
    public var required: Int

    public init(id: String, state: ApprovalState, approvals: Int, required: Int) {
        self.id = id
        self.state = state
        self.approvals = approvals
        self.required = required
    }
}

/// The `approval` event of `exec` (and `logs -f`): where a request waiting for approval stands.
public struct ApprovalEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var executionId: String
    public var state: ApprovalState
    public var approvals: Int
    public var required: Int
    public var approvedBy: [String]
    public var approvers: ApproverList
    public var expiresAtMs: Int64
    public var digest: String

    public init(
        id: RequestID?, executionId: String, state: ApprovalState, approvals: Int, required: Int,
        approvedBy: [String], approvers: ApproverList, expiresAtMs: Int64, digest: String
    ) {
        self.id = id
        self.event = "approval"
        self.executionId = executionId
        self.state = state
        self.approvals = approvals
        self.required = required
        self.approvedBy = approvedBy
        self.approvers = approvers
        self.expiresAtMs = expiresAtMs
        self.digest = digest
    }

    enum CodingKeys: String, CodingKey {
        case id, event, state, approvals, required, approvers, digest
        case executionId = "execution_id"
        case approvedBy = "approved_by"
        case expiresAtMs = "expires_at_ms"
    }
}
