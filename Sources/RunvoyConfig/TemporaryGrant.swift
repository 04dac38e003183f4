import RunvoyKit

/// A role or an executor given to one user for a limited time (`runvoyctl grant`, or a `request-grant` that was
/// approved). Grants live in the state database, not in the file: the daemon adds the active ones to the
/// configuration in force (`DaemonConfig.grants`), and a grant counts only until `expiresAtMs`, whatever timer
/// or reload is late.
public struct TemporaryGrant: Sendable, Equatable, Hashable {
    /// What a grant gives: a role (with its permissions), or the use of one executor.
    public enum Subject: Sendable, Equatable, Hashable {
        case role(Role)
        case executor(String)

        /// `role operator`, `executor deploy`.
        public var display: String {
            switch self {
            case .role(let role): "role \(role.rawValue)"
            case .executor(let name): "executor \(name)"
            }
        }
    }

    public var id: String
    /// The user it is given to, by uid (the name is for display: the uid decides).
    public var uid: UInt32
    public var user: String
    public var subject: Subject
    public var reason: String
    public var grantedByUid: UInt32
    public var grantedByUser: String
    /// The request for approval it was made for (`request-grant`), if any.
    public var requestId: String?
    public var createdAtMs: Int64
    public var expiresAtMs: Int64

    public init(
        id: String, uid: UInt32, user: String, subject: Subject, reason: String, grantedByUid: UInt32,
        grantedByUser: String, requestId: String? = nil, createdAtMs: Int64, expiresAtMs: Int64
    ) {
        self.id = id
        self.uid = uid
        self.user = user
        self.subject = subject
        self.reason = reason
        self.grantedByUid = grantedByUid
        self.grantedByUser = grantedByUser
        self.requestId = requestId
        self.createdAtMs = createdAtMs
        self.expiresAtMs = expiresAtMs
    }

    /// Whether it still counts at `now` (Unix milliseconds): it ends at its expiry exactly.
    public func isActive(atMs now: Int64) -> Bool { now < expiresAtMs }

    /// The role it gives, if it gives one.
    public var role: Role? {
        if case .role(let role) = subject { return role }
        return nil
    }

    /// The executor it gives, if it gives one.
    public var executor: String? {
        if case .executor(let name) = subject { return name }
        return nil
    }
}

/// `grants`: what temporary grants may be (`runvoyctl grant`) and what users may ask for (`request-grant`).
public struct GrantSettings: Sendable, Equatable {
    /// The longest a grant lasts; a longer `--for` is refused.
    public var maxDuration: Duration = .seconds(24 * 3600)
    /// Roles users may ask for; `admin` only if listed.
    public var requestableRoles: [Role] = []
    /// Executors users may ask for; `*` for any.
    public var requestableExecutors: [String] = []
    /// The approval a request for a grant needs (never none).
    public var approval: ApprovalPolicy = GrantSettings.defaultApproval
    /// What happens, when a grant ends, to the running executions of its user that it admitted.
    public var endRunning: EndRunning = .kill

    /// `end_running`: `kill` terminates (with the kill grace) the running executions of the grant's user that
    /// the configuration in force no longer allows; `keep` lets them run (they take no more input from the user).
    public enum EndRunning: String, Sendable, Equatable, CaseIterable {
        case kill, keep
    }

    public static let minDuration: Duration = .seconds(60)
    public static let maxMaxDuration: Duration = .seconds(90 * 86400)
    /// One administrator approves, within the hour, and a reason is required.
    public static let defaultApproval = ApprovalPolicy(
        count: 1, approvers: AccessList(roles: [.admin]), expires: .seconds(3600), reasonRequired: true)

    public init() {}

    /// Whether a user may ask for `subject`.
    public func mayRequest(_ subject: TemporaryGrant.Subject) -> Bool {
        switch subject {
        case .role(let role): requestableRoles.contains(role)
        case .executor(let name): requestableExecutors.contains("*") || requestableExecutors.contains(name)
        }
    }
}
