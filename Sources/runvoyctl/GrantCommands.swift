import ArgumentParser
import RunvoyKit

/// `runvoyctl grant`: give a user a role or an executor for a limited time (administrators).
struct GrantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grant",
        abstract: "Give a user a role or the use of an executor for a limited time (administrators).",
        discussion: """
            The grant is kept in runvoyd's state database, shows in runvoyctl users and capabilities with its \
            expiry, and ends at that time without a reload (the user's next request is judged without it; what it \
            started keeps running). End it earlier with runvoyctl revoke ID. --for is at most grants.max_duration. \
            Every grant is audited (grant_changed) with what the user gained.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "The user given the grant.")
    var user: String

    @Option(name: .long, help: "A role: admin, operator, developer or viewer.")
    var role: String?

    @Option(name: .long, help: "An executor (its allow then admits the user; the exec permission is still needed).")
    var executor: String?

    @Option(name: .customLong("for"), help: ArgumentHelp("How long: 30m, 2h, 1d.", valueName: "duration"))
    var duration: String

    @Option(name: .long, help: "Why (recorded in the audit trail).")
    var reason: String

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        try GrantOptions.check(role: role, executor: executor, duration: duration)
    }

    func run() throws {
        let params = GrantParams(
            user: user, role: role, executor: executor, forMs: GrantOptions.milliseconds(duration) ?? 0,
            reason: reason)
        try remoteCall(global, .grant, params: params, result: GrantResult.self, json: json) { result in
            printLine(GrantOptions.describe(result.grant))
        }
    }
}

/// `runvoyctl revoke`: end a temporary grant before its time (administrators).
struct RevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "End a temporary grant before its time (administrators).",
        discussion: "The user's next request is judged without it. Audited (grant_changed) with what the user lost.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The grant's id (runvoyctl users lists them).", valueName: "grant-id"))
    var id: String

    @Option(name: .long, help: "Why (recorded in the audit trail).")
    var comment: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        try remoteCall(
            global, .revoke, params: RevokeParams(grantId: id, comment: comment), result: GrantResult.self, json: json
        ) { result in
            printLine("revoked: " + GrantOptions.describe(result.grant))
        }
    }
}

/// What `grant` and `request-grant` share.
enum GrantOptions {
    static func check(role: String?, executor: String?, duration: String) throws {
        guard (role == nil) != (executor == nil) else {
            throw ValidationError("give exactly one of --role and --executor")
        }
        guard milliseconds(duration) != nil else {
            throw ValidationError("--for must be a duration such as 30m, 2h or 1d")
        }
    }

    /// `--for` in milliseconds; nil when it is not a duration or is under a second.
    static func milliseconds(_ text: String) -> Int64? {
        guard let duration = DurationParser.parse(text) else { return nil }
        let (seconds, attoseconds) = duration.components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return ms >= 1000 ? ms : nil
    }

    /// "grant ID: role operator for bob until 2026-12-02 14:00:00 UTC (granted by root: INC-1)".
    static func describe(_ grant: GrantInfo) -> String {
        "grant \(grant.id): \(grant.subject) for \(grant.user) until \(time(grant.expiresAtMs)) "
            + "(granted by \(grant.grantedBy): \(grant.reason))"
    }

    static func time(_ ms: Int64) -> String { HistoryFormat.localTime(ms: ms) }
}

/// `runvoyctl request-grant`: ask for a role or an executor for a limited time; waits for approval.
struct RequestGrantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request-grant",
        abstract: "Ask for a role or the use of an executor for a limited time; waits for approval.",
        discussion: """
            Only what grants.requestable_roles and grants.requestable_executors list may be asked for, for at most \
            grants.max_duration. The request goes through the same approval flow as runvoyctl exec: approvers see \
            it in runvoyctl approvals and answer with runvoyctl approve ID or deny ID; you never approve your own. \
            This waits, showing who may approve, until the grant is made (from then, for --for) or the request is \
            denied or expires; with --detach it prints the request's id at once and the grant is made when approved.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "A role: operator, developer, viewer (admin only if requestable).")
    var role: String?

    @Option(name: .long, help: "An executor.")
    var executor: String?

    @Option(name: .customLong("for"), help: ArgumentHelp("How long: 30m, 2h.", valueName: "duration"))
    var duration: String

    @Option(name: .long, help: "Why (shown to approvers, recorded in the audit trail).")
    var reason: String

    @Flag(name: .long, help: "Return at once with the request's id; the grant is made when approved.")
    var detach = false

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        try GrantOptions.check(role: role, executor: executor, duration: duration)
    }

    func run() throws {
        let params = RequestGrantParams(
            role: role, executor: executor, forMs: GrantOptions.milliseconds(duration) ?? 0, reason: reason,
            detach: detach)
        let result: RequestGrantResult
        do {
            let client = try RunvoyClient(socketPath: global.socketPath)
            result = try client.stream(.requestGrant, params: params, result: RequestGrantResult.self) { payload in
                if !json, let frame = JSONValue.parse(payload), frame["event"]?.string == "approval" {
                    complain(ApprovalDisplay.waiting(frame))
                }
            }
        } catch {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
        if json {
            print(try HistoryFormat.json(result))
        } else if let grant = result.grant {
            printLine(GrantOptions.describe(grant))
        } else {
            printLine(
                "request \(result.id) waits for \(result.required) approval(s) from \(result.approvers.display); "
                    + "the grant is made when it is approved (runvoyctl capabilities shows it then)")
        }
    }
}
