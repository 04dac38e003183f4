import ArgumentParser
import RunvoyKit

/// `runvoyctl approvals`: requests for approval you may see.
struct ApprovalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals",
        abstract: "List requests for approval: yours, those you may answer (or, with view_all, everyone's).",
        discussion: """
            Each shows its requester, executor, the exact argv, environment names, secrets' names, reason, age and \
            digest. Pending ones by default; --state lists others, --break-glass the break-glass runs not reviewed \
            yet. Answer with runvoyctl approve ID or runvoyctl deny ID --comment TEXT.
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

    @Flag(name: .long, help: "Print JSON.")
    var json = false

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
        try remoteCall(
            global, .approvals, params: ApprovalsParams(state: states), result: ApprovalsResult.self, json: json
        ) { result in
            if result.requests.isEmpty { printLine("no requests") }
            for info in result.requests {
                for line in ApprovalDisplay.lines(info) { printLine(line) }
            }
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
            You can never approve your own request.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The request's (execution's) id.", valueName: "id"))
    var id: String

    @Option(name: .long, help: "A comment, recorded and audited (required to review a break-glass run).")
    var comment: String?

    func run() throws {
        let shown = try remoteCall(
            global, .approvals, params: ApprovalsParams(id: id), result: ApprovalsResult.self, json: false
        ) { _ in }
        guard let info = shown.requests.first else { throw ValidationError("no request \(id)") }
        for line in ApprovalDisplay.lines(info) { printLine(line) }
        let result = try remoteCall(
            global, .approve, params: ApproveParams(id: id, digest: info.digest, comment: comment),
            result: ApprovalAnswerResult.self, json: false
        ) { _ in }
        printLine("request \(result.id): \(result.state.rawValue), \(result.approvals)/\(result.required) approvals")
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
