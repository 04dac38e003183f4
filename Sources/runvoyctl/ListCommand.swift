import ArgumentParser
import Glibc
import RunvoyKit

/// `runvoyctl list`: the execution history, newest first.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List executions, newest first.",
        discussion: """
            You see your own executions; operators, viewers and admins see everyone's. The table is fitted to \
            the terminal width (or $COLUMNS); --json prints {"executions": [...], "more": BOOL} with the fields \
            documented in docs/PROTOCOL.md. When more executions match than one reply holds (--limit, or the \
            reply's size), it says so on standard error: --before with the last id shown lists the next ones.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .long], help: ArgumentHelp("Show at most this many (1-1000).", valueName: "n"))
    var limit: Int = ListParams.defaultLimit

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Only these states, comma-separated: running, succeeded, failed, killed, timed_out, lost, queued.",
            valueName: "states"))
    var status: String?

    @Option(name: [.short, .long], help: ArgumentHelp("Only executions started by this user.", valueName: "user"))
    var user: String?

    @Option(name: [.short, .long], help: ArgumentHelp("Only executions on this executor.", valueName: "name"))
    var executor: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Only executions started within this long (e.g. 1h, 2d).", valueName: "duration"))
    var since: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Only executions listed after this one (the last id of the previous list).", valueName: "id")
    )
    var before: String?

    @Option(
        name: .customLong("run"), help: ArgumentHelp("Only the steps of this playbook run.", valueName: "run-id"))
    var runId: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (1...ListParams.maximumLimit).contains(limit) else {
            throw ValidationError("--limit must be between 1 and \(ListParams.maximumLimit)")
        }
        if let status, ExecutionStatus.parseList(status) == nil {
            throw ValidationError(
                "--status takes a comma-separated list of: "
                    + ExecutionStatus.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if let since, DurationParser.parse(since) == nil {
            throw ValidationError("--since takes a duration such as 30m, 1h or 2d")
        }
    }

    func run() throws {
        var params = ListParams(limit: limit, user: user, executor: executor, before: before, runId: runId)
        if let status { params.status = ExecutionStatus.parseList(status) }
        if let since, let duration = DurationParser.parse(since) {
            params.sinceMs = WallClock.milliseconds() - duration.components.seconds * 1000
        }
        let result = try remoteCall(global, .list, params: params, result: ListResult.self, json: json) { result in
            let rows = result.executions.map { info in
                [
                    info.executionId, info.status.rawValue, info.callerUser, info.executor,
                    HistoryFormat.localTime(ms: info.createdAtMs), HistoryFormat.duration(usec: info.durationUsec),
                    HistoryFormat.exit(info), HistoryFormat.command(info),
                ]
            }
            print(
                HistoryFormat.table(
                    ["ID", "STATUS", "USER", "EXECUTOR", "CREATED", "DURATION", "EXIT", "COMMAND"], rows,
                    width: HistoryFormat.terminalWidth(), dropOrder: [5, 4, 3, 2]),
                terminator: "")
        }
        if !json, let hint = Self.moreHint(result) { complain(hint) }
    }

    /// What to add to see the executions after this reply, when there are more.
    static func moreHint(_ result: ListResult) -> String? {
        guard result.more, let last = result.executions.last else { return nil }
        return "more executions match: add --before \(last.executionId) to list the next ones"
    }
}
