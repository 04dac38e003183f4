import ArgumentParser
import RunvoyKit

/// `runvoyctl trace ID`: the daemon's journal records of one execution, without journal access of one's own.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show runvoyd's journal records of one execution: its decision, start, end and what was done to it.",
        discussion: """
            ID is an execution id; with --request, the id of the request that started it (yours only, unless you \
            may view every execution).
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The execution id (or, with --request, the request id).", valueName: "id"))
    var id: String

    @Flag(name: .long, help: "ID is the id of the request that started the execution.")
    var request = false

    @Option(name: .long, help: "At most this many records (1-\(TraceParams.maximumLimit)).")
    var limit: Int?

    @Flag(name: .long, help: "Print JSON: every record with its fields.")
    var json = false

    func run() throws {
        let params =
            request ? TraceParams(requestId: id, limit: limit) : TraceParams(executionId: id, limit: limit)
        try remoteCall(global, .trace, params: params, result: TraceResult.self, json: json) { trace in
            if trace.records.isEmpty { complain("no journal records for \(id) (yet: the journal writes lag a little)") }
            for record in trace.records {
                let time = HistoryFormat.localTime(ms: record.timeUsec / 1000)
                printLine("\(time)  \((record.event ?? "-").padding(20)) \(record.message)")
            }
            if trace.truncated { complain("more records than shown (--limit, or the daemon's bound)") }
        }
    }
}
