import ArgumentParser
import Glibc
import RunvoyKit

/// `runvoyctl approvals`: requests for approval you may see.
struct ApprovalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals",
        abstract: "List requests for approval: yours, those you may answer (or, with view_all, everyone's).",
        discussion: """
            Each shows its requester, executor, the exact argv, environment names, secrets' names, reason, age and \
            digest. Pending ones by default; --state lists others, --break-glass the break-glass runs not reviewed \
            yet. Answer with runvoyctl approve ID or runvoyctl deny ID --comment TEXT. A listing shows at most 4 KiB \
            of each argv and 1 KiB of environment names (runvoyctl approve ID shows 64 KiB and 16 KiB) and says \
            when it cut them. When more requests match than one reply holds (--limit, or the reply's size), it says \
            so on standard error: --before with the last id shown lists the next ones.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        name: .long,
        help:
            "States, comma-separated (pending, approved, fulfilled, denied, expired, withdrawn, invalidated, break_glass, reviewed)."
    )
    var state: String?

    @Flag(name: .long, help: "Break-glass runs not reviewed yet.")
    var breakGlass = false

    @Option(name: .long, help: "At most this many, newest first (1-500).")
    var limit = ApprovalsParams.defaultLimit

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Only requests listed after this one (the last id of the previous listing).", valueName: "id")
    )
    var before: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (1...ApprovalsParams.maximumLimit).contains(limit) else {
            throw ValidationError("--limit must be between 1 and \(ApprovalsParams.maximumLimit)")
        }
    }

    func run() throws {
        var states: [ApprovalState]?
        if breakGlass { states = [.breakGlass] }
        if let state {
            states = try state.split(separator: ",").map {
                guard let parsed = ApprovalState(rawValue: String($0)) else {
                    throw ValidationError("unknown state '\($0)'")
                }
                return parsed
            }
        }
        let params = ApprovalsParams(state: states, limit: limit, before: before)
        let result = try remoteCall(
            global, .approvals, params: params, result: ApprovalsResult.self, json: json
        ) { result in
            if result.requests.isEmpty { printLine("no requests") }
            for info in result.requests {
                for line in ApprovalDisplay.lines(info) { printLine(line) }
            }
        }
        if !json, result.more, let last = result.requests.last {
            complain("more requests match: add --before \(last.id) to list the next ones")
        }
    }
}

/// `runvoyctl approve ID`: shows the request, then approves exactly what it showed (its digest).
struct ApproveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve a request for approval (or review a break-glass run), after showing it.",
        discussion: """
            The approval is bound to the digest shown: if the request is not that one any more, it is refused. \
            You can never approve your own request. A reply carries at most 64 KiB of a request's argv and 16 KiB \
            of its environment names; a request that could not be shown whole is not approved unless you read it \
            whole elsewhere (an administrator: RUNVOY_ARGV and RUNVOY_ENV_KEYS of its approval_requested audit \
            record: journalctl RUNVOY_EVENT=approval_requested RUNVOY_APPROVAL_ID=ID -o verbose) and pass \
            --unseen-ok. On a terminal it asks before it approves (--yes does not ask); with --digest it approves \
            only the request you read in `runvoyctl approvals` (its digest line), whatever it shows now: what a \
            script should pass.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The request's (execution's) id.", valueName: "id"))
    var id: String

    @Option(name: .long, help: "A comment, recorded and audited (required to review a break-glass run).")
    var comment: String?

    @Flag(
        name: .customLong("unseen-ok"),
        help: "Approve a request that could not be shown whole (its argv or environment names cut), read elsewhere.")
    var unseenOk = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Approve only the request with this digest (the digest line `approvals` showed you).", valueName: "digest"))
    var digest: String?

    @Flag(name: [.short, .long], help: "Do not ask before approving on a terminal.")
    var yes = false

    func run() throws {
        let shown = try remoteCall(
            global, .approvals, params: ApprovalsParams(id: id), result: ApprovalsResult.self, json: false
        ) { _ in }
        guard let info = shown.requests.first else { throw ValidationError("no request \(id)") }
        for line in ApprovalDisplay.lines(info) { printLine(line) }
        if !info.isWhole && !unseenOk {
            complain(Self.unseen(info))
            throw ExitCode(CtlExit.failure)
        }
        // Read before approving (review of approvals, D3): a person at a terminal answers; a script names the digest.
        if digest == nil && !yes && isatty(0) == 1 && isatty(1) == 1 && !Self.confirmed(info) {
            complain("not approved: request \(id) was not confirmed")
            throw ExitCode(CtlExit.failure)
        }
        let result = try remoteCall(
            global, .approve, params: ApproveParams(id: id, digest: digest ?? info.digest, comment: comment),
            result: ApprovalAnswerResult.self, json: false
        ) { _ in }
        printLine("request \(result.id): \(result.state.rawValue), \(result.approvals)/\(result.required) approvals")
    }

    /// Asks on the terminal whether to approve what was just shown; only "y" or "yes" is a yes.
    static func confirmed(_ info: ApprovalInfo) -> Bool {
        let verb = info.kind == "break_glass" ? "review" : "approve"
        print("\(verb) this request? [y/N] ", terminator: "")
        fflush(nil)
        let answer = String((readLine() ?? "").filter { !$0.isWhitespace }).lowercased()
        return answer == "y" || answer == "yes"
    }

    /// Why a request shown in part is not approved, and where to read it whole.
    static func unseen(_ info: ApprovalInfo) -> String {
        let cut = [info.argvTruncated ? "argv" : nil, info.envKeysTruncated ? "environment names" : nil]
            .compactMap { $0 }.joined(separator: " and ")
        return "not approved: request \(info.id) is too large to show whole (its \(cut) above are cut), and an "
            + "approval covers all of it. Read it whole first (an administrator: RUNVOY_ARGV and RUNVOY_ENV_KEYS of "
            + "its approval_requested audit record, journalctl RUNVOY_APPROVAL_ID=\(info.id) "
            + "RUNVOY_EVENT=approval_requested -o verbose), then approve with --unseen-ok."
    }
}

/// `runvoyctl deny ID --comment TEXT`.
struct DenyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deny", abstract: "Deny a request for approval; its requester is told your comment.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The request's (execution's) id.", valueName: "id"))
    var id: String

    @Option(name: .long, help: "Why (required): the requester is told.")
    var comment: String

    func run() throws {
        let result = try remoteCall(
            global, .deny, params: DenyParams(id: id, comment: comment), result: ApprovalAnswerResult.self,
            json: false
        ) { _ in }
        printLine("request \(result.id): \(result.state.rawValue)")
    }
}
