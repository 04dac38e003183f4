import Glibc
import RunvoyKit

/// Making and removing the timers, and finding runvoyctl.
extension ScheduleManager {
    /// How many times a timer is made again while systemd still holds the one just removed (`UnitExists`), 100 ms
    /// apart.
    static let unitExistsRetries = 50

    /// Makes `units`' timer and service; returns why systemd refused them, or nil.
    func create(_ bus: SystemdBus, _ units: ScheduleUnits) async -> String? {
        for attempt in 1...Self.unitExistsRetries {
            let made = await bus.startTimer(
                units.timerName, properties: units.timerProperties, service: units.serviceName,
                serviceProperties: units.serviceProperties)
            switch made {
            case .success:
                logger.notice(
                    "schedule of playbook \(units.playbook): timer \(units.timerName) made",
                    metadata: ["calendar": "\(units.calendar)", "run_as_caller": "\(units.runAsCaller)"])
                return nil
            case .failure(let failure)
            where failure.message.hasPrefix("org.freedesktop.systemd1.UnitExists") && attempt < Self.unitExistsRetries:
                // A unit of the same name is still loaded (a previous daemon's, or one just stopped).
                _ = await bus.removeUnits([units.timerName, units.serviceName])
                try? await Task.sleep(for: .milliseconds(100))
            case .failure(let failure):
                logger.error("schedule of playbook \(units.playbook): systemd refused its timer: \(failure.message)")
                return "systemd refused the timer: \(failure.message)"
            }
        }
        return nil
    }

    /// Stops and unloads `entry`'s timer and service (a run in progress is stopped too).
    func remove(_ bus: SystemdBus, _ entry: Entry) async {
        guard let units = entry.units else { return }
        let failures = await bus.removeUnits([units.timerName, units.serviceName])
        for (unit, failure) in failures.sorted(by: { $0.key < $1.key }) {
            logger.error("schedule of playbook \(entry.playbook): cannot remove \(unit): \(failure.message)")
        }
        if failures.isEmpty {
            logger.notice("schedule of playbook \(entry.playbook): timer \(units.timerName) removed")
        }
    }

    /// Removes the schedules' units a previous daemon left (transient units live until reboot).
    func removeLeftovers(_ bus: SystemdBus) async {
        switch await bus.listUnits(matching: ScheduleUnits.prefix + "*") {
        case .success(let names):
            let ours = names.filter { ScheduleUnits.playbook(ofUnit: $0) != nil }
            guard !ours.isEmpty else { return }
            for (unit, failure) in await bus.removeUnits(ours) {
                logger.error("cannot remove \(unit), left by a previous runvoyd: \(failure.message)")
            }
        case .failure(let failure):
            logger.error("cannot list the schedules' units a previous runvoyd left: \(failure.message)")
        }
    }

    /// Where runvoyctl is looked for: beside runvoyd's executable, then in the `bin` beside its `sbin` (as
    /// packaged: /usr/sbin/runvoyd, /usr/bin/runvoyctl).
    static func defaultClientCandidates() -> [String] {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return ["/usr/bin/runvoyctl"] }
        let exe = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return ["/usr/bin/runvoyctl"] }
        let directory = String(exe[..<slash])
        var candidates = [directory + "/runvoyctl"]
        if directory.hasSuffix("/sbin") { candidates.append(String(directory.dropLast(5)) + "/bin/runvoyctl") }
        return candidates
    }

    /// The first candidate that is an executable file owned by root (it runs as the schedules' users, chosen by
    /// root), or nil.
    static func defaultClient() -> String? {
        defaultClientCandidates().first { path in
            var info = stat()
            return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && info.st_mode & 0o111 != 0
                && (geteuid() != 0 || info.st_uid == 0)
        }
    }
}
