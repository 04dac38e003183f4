import ArgumentParser
import RunvoyKit

/// `runvoyctl cancel ID`: take a waiting execution out of the queue.
struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Take an execution that waits in the queue, or for approval, out of it; it never runs.",
        discussion: """
            Its owner (kill_own) and administrators (kill_all) may cancel it; its waiting client is told. A request \
            that waits for approval is withdrawn (approval_decided, withdrawn), and so is a request for a grant \
            (request-grant) by its requester. An execution that already runs is not touched: use kill. Every \
            cancellation is audited.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The execution id.", valueName: "id"))
    var id: String

    func run() throws {
        let result = try remoteCall(
            global, .cancel, params: CancelParams(executionId: id), result: CancelResult.self, json: false
        ) { _ in }
        printLine("cancelled execution \(result.executionId); it did not run")
    }
}
