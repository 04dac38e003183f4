import ArgumentParser
import RunvoyKit

/// `runvoyctl health`: the daemon's checks, with an exit status monitoring checks understand.
struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Check that runvoyd is healthy: journal, history database, free space, master key, watchdog.",
        discussion: """
            Exit status: 0 healthy, 1 degraded (it serves, but something needs attention), 2 failing (requests \
            are refused, or will be; also when runvoyd does not answer at all), 3 unknown (the daemon refused to \
            say, as to a caller with no role).
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        let result: HealthResult
        do {
            let client = try RunvoyClient(socketPath: global.socketPath)
            result = try client.call(.health, params: NoParams(), result: HealthResult.self)
        } catch {
            complain(error.description)
            throw ExitCode(error.remote == nil ? HealthStatus.failing.exitStatus : 3)
        }
        if json {
            print(try HistoryFormat.json(result))
        } else {
            print(Self.describe(result), terminator: "")
        }
        throw ExitCode(result.status.exitStatus)
    }

    static func describe(_ health: HealthResult) -> String {
        var text = "runvoyd \(health.version): \(health.status.rawValue)\n"
        for check in health.checks {
            let name = check.name + ":" + String(repeating: " ", count: max(1, 12 - check.name.count))
            let detail = check.detail.map { " (\($0))" } ?? ""
            text += "  \(name)\(check.status.rawValue.padding(9)) \(check.message)\(detail)\n"
        }
        text += "  configuration: digest \(health.configDigest), loaded "
        text += HistoryFormat.localTime(ms: health.configLoadedAtMs) + "\n"
        text += "  up-time:     \(HistoryFormat.duration(usec: Int64(health.uptimeSeconds * 1e6)))\n"
        text += "  containment: \(health.containment)\n"
        return TerminalText.escape(text, keepNewlines: true)
    }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
