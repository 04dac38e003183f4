import RunvoyKit

/// What running a command takes besides the policy's allow: approvals from other people (the two-person rule).
/// Written `approval: {count, approvers, expires, reason}` on an executor or on one of its allow rules.
public struct ApprovalPolicy: Sendable, Equatable {
    /// How many distinct approvers must approve; 0 means none (a rule's exception to its executor's approval).
    public var count: Int
    /// Who may approve (the requester never may, whatever its roles).
    public var approvers: AccessList
    /// How long a request waits for its approvals before it expires (at most `approvals.max_expires`).
    public var expires: Duration
    /// Whether the request must give a reason (`exec --reason`).
    public var reasonRequired: Bool
    /// Line of the `approval` key in the file.
    public var line: Int

    public static let defaultCount = 1
    public static let defaultExpires: Duration = .seconds(3600)
    /// The most approvals a policy may ask for.
    public static let maxCount = 16

    public init(
        count: Int = ApprovalPolicy.defaultCount, approvers: AccessList = AccessList(),
        expires: Duration = ApprovalPolicy.defaultExpires, reasonRequired: Bool = false, line: Int = 0
    ) {
        self.count = count
        self.approvers = approvers
        self.expires = expires
        self.reasonRequired = reasonRequired
        self.line = line
    }

    /// Whether it asks for any approval at all.
    public var requiresApproval: Bool { count > 0 }

    /// As `explain` shows it: "needs 2 approvals (roles admin; groups sre), expires 15m".
    public var display: String {
        guard requiresApproval else { return "needs no approval" }
        var text = "needs \(count) approval\(count == 1 ? "" : "s") (\(Self.describe(approvers)))"
        text += ", expires \(DurationParser.format(expires))"
        if reasonRequired { text += ", a reason is required" }
        return text
    }

    /// "roles admin; groups sre; users bob"; "no one" for an empty list.
    public static func describe(_ list: AccessList) -> String {
        var parts: [String] = []
        if !list.roles.isEmpty { parts.append("roles " + list.roles.map(\.rawValue).joined(separator: ", ")) }
        if !list.groups.isEmpty { parts.append("groups " + list.groups.joined(separator: ", ")) }
        if !list.users.isEmpty { parts.append("users " + list.users.joined(separator: ", ")) }
        return parts.isEmpty ? "no one" : parts.joined(separator: "; ")
    }
}

/// `approvals`: bounds on the requests that wait for approval.
public struct ApprovalSettings: Sendable, Equatable {
    /// Requests waiting for approval at once, everyone's together; beyond it new ones are refused (`busy`).
    public var maxPending: Int = 1000
    /// Requests one user may have waiting at once.
    public var maxPendingPerUser: Int = 10
    /// The longest any request waits, whatever its policy's `expires` says.
    public var maxExpires: Duration = .seconds(7 * 86400)

    public init() {}
}
