import ArgumentParser
import RunvoyKit

/// `runvoyctl export`: execution records as JSON lines, for a SIEM.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Print execution records as JSON lines, oldest first (for a SIEM).",
        discussion: """
            One execution object per line, exactly as `list --json` prints them (fields in docs/PROTOCOL.md), \
            oldest first, streamed: any size of history goes through in little memory. You get your own \
            executions; operators, viewers and admins get everyone's. Executions created after the export \
            started are not in it.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        name: .long,
        help: ArgumentHelp("Only executions started within this long (e.g. 1h, 7d).", valueName: "duration"))
    var since: String?

    @Option(name: .long, help: ArgumentHelp("Output format: jsonl (the only one).", valueName: "format"))
    var format: String = "jsonl"

    func validate() throws {
        guard format == "jsonl" else { throw ValidationError("--format takes jsonl") }
        if let since, DurationParser.parse(since) == nil {
            throw ValidationError("--since takes a duration such as 30m, 1h or 7d")
        }
    }

    func run() throws {
        var params = ExportParams()
        if let since, let duration = DurationParser.parse(since) {
            params.sinceMs = WallClock.milliseconds() - duration.components.seconds * 1000
        }
        do throws(ClientError) {
            let client = try RunvoyClient(socketPath: global.socketPath)
            _ = try client.stream(.export, params: params, result: ExportResult.self) { payload in
                let event = try Frame.decode(ExportEvent.self, from: payload)
                print(try HistoryFormat.json(event.execution))
            }
        } catch {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
    }
}
