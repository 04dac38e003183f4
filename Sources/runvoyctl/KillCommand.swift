import ArgumentParser
import RunvoyKit

/// `runvoyctl kill ID`: signal a running execution's process group.
struct KillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "Send a signal (TERM by default) to a running execution's process group.",
        discussion: "Developers may kill their own executions; operators and admins any. Every request is audited.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The execution id.", valueName: "id"))
    var id: String

    @Option(
        name: [.short, .long],
        help: ArgumentHelp("Signal name or number (TERM, INT, KILL, HUP, 9…).", valueName: "signal"))
    var signal: String = "TERM"

    func run() throws {
        let result = try remoteCall(
            global, .kill, params: KillParams(executionId: id, signal: signal), result: KillResult.self, json: false
        ) { _ in }
        guard result.delivered else {
            complain("execution \(result.executionId) ended before the signal could be sent")
            throw ExitCode(1)
        }
        printLine("sent signal \(result.signal) to execution \(result.executionId)")
    }
}
