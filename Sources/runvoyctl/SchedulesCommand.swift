import ArgumentParser
import RunvoyKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `runvoyctl schedules`: the playbooks' schedules, their timers' state, next run and last result.
struct SchedulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules",
        abstract: "Show the playbooks' schedules: their systemd timers, next run and last result.",
        discussion: "A playbook's `schedule:` is a transient systemd timer, runvoy-schedule-<playbook>.timer (also in"
            + " `systemctl list-timers`), that runs the playbook as its run_as_caller user.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        try remoteCall(global, .schedules, params: NoParams(), result: SchedulesResult.self, json: json) { result in
            if result.schedules.isEmpty {
                printLine("no schedules")
                return
            }
            let rows =
                [["PLAYBOOK", "CALENDAR", "RUN AS", "STATE", "NEXT RUN", "LAST RUN", "LAST RESULT"]]
                + result.schedules.map(Self.row)
            let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                printLine(
                    zip(row, widths).enumerated().map { index, cell in
                        index == row.count - 1 ? cell.0 : cell.0 + String(repeating: " ", count: cell.1 - cell.0.count)
                    }.joined(separator: "  "))
            }
            for schedule in result.schedules {
                if let reason = schedule.reason { printLine("\(schedule.playbook): \(schedule.state): \(reason)") }
            }
        }
    }

    static func row(_ schedule: ScheduleInfo) -> [String] {
        var last = schedule.lastResult ?? "-"
        if let status = schedule.lastStatus, last != "success" { last += " (status \(status))" }
        return [
            schedule.playbook, schedule.calendar, schedule.runAsCaller, schedule.state, time(schedule.nextRunMs),
            time(schedule.lastRunMs), last,
        ]
    }

    static func time(_ milliseconds: Int64?) -> String {
        milliseconds.map { HistoryFormat.localTime(ms: $0) } ?? "-"
    }
}
