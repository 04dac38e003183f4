import RunvoyConfig
import RunvoyKit

/// The transient timer and service of one playbook's schedule, as StartTransientUnit takes them: the timer
/// `runvoy-schedule-<playbook>.timer` fires on the calendar and starts the service of the same name, which runs
/// `runvoyctl --socket SOCKET playbook run --schedule -- PLAYBOOK` as `run_as_caller`. The daemon then sees that
/// user (SO_PEERCRED), so policy, approvals, locks and audit apply as for that person; systemd resolves the user
/// at fire time (a user that does not exist fails the service, visibly). Validated when made, so no playbook name,
/// user or calendar can add a piece to a unit name or to the service's argv.
struct ScheduleUnits: Sendable, Equatable {
    let playbook: String
    let calendar: String
    let runAsCaller: String
    /// runvoyctl (absolute).
    let client: String
    /// The daemon's socket (absolute).
    let socket: String

    static let prefix = "runvoy-schedule-"

    /// Why a schedule's units cannot be made.
    struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        var description: String
    }

    init(
        playbook: String, schedule: PlaybookSchedule, client: String, socket: String
    ) throws(Invalid) {
        guard Self.isValidPlaybookName(playbook) else {
            throw Invalid(description: "the playbook name is not valid in a unit name")
        }
        guard Self.isValidUserName(schedule.runAsCaller) else {
            throw Invalid(description: "run_as_caller '\(schedule.runAsCaller)' is not a valid user name")
        }
        guard Self.isValidCalendar(schedule.calendar) else {
            throw Invalid(description: "the calendar is empty, too long or holds control characters")
        }
        for path in [client, socket] where !path.hasPrefix("/") || path.utf8.contains(0) {
            throw Invalid(description: "'\(path)' is not an absolute path")
        }
        self.playbook = playbook
        calendar = schedule.calendar
        runAsCaller = schedule.runAsCaller
        self.client = client
        self.socket = socket
    }

    var timerName: String { Self.timerName(playbook) }
    var serviceName: String { Self.serviceName(playbook) }

    static func timerName(_ playbook: String) -> String { prefix + playbook + ".timer" }
    static func serviceName(_ playbook: String) -> String { prefix + playbook + ".service" }

    /// The playbook's name back from a unit name of a schedule, or nil for another unit.
    static func playbook(ofUnit unit: String) -> String? {
        guard unit.hasPrefix(prefix) else { return nil }
        for suffix in [".timer", ".service"] where unit.hasSuffix(suffix) {
            return String(unit.dropFirst(prefix.count).dropLast(suffix.count))
        }
        return nil
    }

    /// The service's command line: the playbook after `--`, so nothing in it is read as an option.
    var argv: [String] {
        [client, "playbook", "run", "--socket", socket, "--schedule", "--", playbook]
    }

    /// How far from its calendar time the timer may fire (`AccuracyUSec`): 1 s, not systemd's default minute, so
    /// a run starts at the time written.
    static let accuracyUsec: UInt64 = 1_000_000

    var timerProperties: [UnitProperty] {
        [
            .string("Description", "runvoy schedule of playbook \(playbook)"),
            .onCalendar(calendar),
            .uint64("AccuracyUSec", Self.accuracyUsec),
            // Kept loaded once its calendar has no later time, so `schedules` and `systemctl list-timers` show it.
            .boolean("RemainAfterElapse", true),
        ]
    }

    var serviceProperties: [UnitProperty] {
        [
            .string("Description", "runvoy scheduled run of playbook \(playbook) as \(runAsCaller)"),
            .string("Type", "oneshot"),
            .string("User", runAsCaller),
            // runvoyctl needs no privilege: the daemon decides everything.
            .boolean("NoNewPrivileges", true),
            // No `$` in a name, but systemd would expand one in ExecStart: its escape, as for executions' units.
            .execStart(path: client, argv: argv.map { $0.replacingOccurrences(of: "$", with: "$$") }),
        ]
    }

    /// Executor names' rule (1-64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit), checked again here
    /// because the name goes into unit names and an argv.
    static func isValidPlaybookName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func lowerOrDigit(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        return lowerOrDigit(bytes[0]) && bytes.allSatisfy { lowerOrDigit($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }
    }

    /// As the configuration spells `run_as_caller`: 1-32 of letters, digits, '_', '.', '-', starting with a letter
    /// or '_', optionally ending in '$'. Nothing in it can reach a unit name or the argv (`User=` only).
    static func isValidUserName(_ name: String) -> Bool {
        var bytes = Array(name.utf8)
        if bytes.last == 0x24 { bytes.removeLast() }
        guard (1...32).contains(bytes.count) else { return false }
        func letter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F }
        return letter(bytes[0])
            && bytes.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D }
    }

    /// Not empty, at most 256 bytes, no control characters: PID 1 parses the rest, and refuses what is invalid.
    static func isValidCalendar(_ calendar: String) -> Bool {
        let bytes = Array(calendar.utf8)
        return (1...256).contains(bytes.count) && !bytes.contains { $0 < 0x20 || $0 == 0x7F }
            && !calendar.allSatisfy { $0 == " " }
    }
}
