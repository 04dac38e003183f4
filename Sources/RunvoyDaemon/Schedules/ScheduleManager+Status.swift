import RunvoyKit

/// What `schedules` reports.
extension ScheduleManager {
    /// Every schedule, by playbook name, with its timer's state as systemd reports it now.
    func list() async -> [ScheduleInfo] {
        switch state {
        case .initial:
            return Self.entries(store.current, client: client).values.sorted { $0.playbook < $1.playbook }.map {
                Self.info($0, state: "inactive", reason: "its timer is being made")
            }
        case .unavailable(let reason, let entries):
            return entries.values.sorted { $0.playbook < $1.playbook }.map {
                Self.info($0, state: "inactive", reason: "no systemd timers here: \(reason)")
            }
        case .running(let bus, let entries):
            var list: [ScheduleInfo] = []
            for entry in entries.values.sorted(by: { $0.playbook < $1.playbook }) {
                list.append(await Self.read(entry, bus: bus))
            }
            return list
        case .stopped:
            return []
        }
    }

    static func info(_ entry: Entry, state: String, reason: String?) -> ScheduleInfo {
        ScheduleInfo(
            playbook: entry.playbook, calendar: entry.calendar, runAsCaller: entry.runAsCaller, state: state,
            reason: reason, unit: ScheduleUnits.timerName(entry.playbook))
    }

    /// `entry` with what systemd says of its timer and service.
    static func read(_ entry: Entry, bus: SystemdBus) async -> ScheduleInfo {
        guard let units = entry.units, entry.failure == nil else {
            return info(entry, state: "failed", reason: entry.failure)
        }
        let timer: SystemdBus.TimerState
        switch await bus.timerState(units.timerName, service: units.serviceName) {
        case .success(let state): timer = state
        case .failure(let failure): return info(entry, state: "failed", reason: "cannot read its timer: \(failure)")
        }
        var result: ScheduleInfo
        switch timer.timerState {
        case "waiting", "running": result = info(entry, state: "active", reason: nil)
        case "elapsed": result = info(entry, state: "inactive", reason: "its calendar has no later time")
        case "dead": result = info(entry, state: "inactive", reason: "its timer was stopped")
        default: result = info(entry, state: "failed", reason: "its timer is \(timer.timerState)")
        }
        result.nextRunMs = timer.nextElapseUsec.map { Int64(clamping: $0 / 1000) }
        result.lastRunMs = timer.lastTriggerUsec.map { Int64(clamping: $0 / 1000) }
        if timer.serviceState == "activating" || timer.serviceState == "active" {
            result.lastResult = "running"
        } else if result.lastRunMs != nil {
            result.lastResult = timer.serviceResult
            result.lastStatus = timer.serviceStatus
        }
        return result
    }
}
