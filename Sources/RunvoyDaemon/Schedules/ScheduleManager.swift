import Logging
import RunvoyConfig
import RunvoyKit
import ServiceLifecycle

/// Keeps a transient systemd timer for every playbook with a `schedule`: at start (removing what a previous
/// daemon left, since transient units outlive it until reboot) and after each reload (making the new and changed
/// ones, removing those that went away or changed), and removes them all at shutdown. Each timer starts a service
/// that runs runvoyctl as the schedule's user (`ScheduleUnits`): no privileged way to fire a run exists.
/// Without systemd (or its bus) the schedules are kept as `inactive`, with the reason. The daemon's last service,
/// so the first shut down: the timers go before the server stops answering the runs they start.
actor ScheduleManager: Service {
    /// One schedule as last applied.
    struct Entry: Sendable, Equatable {
        var playbook: String
        var calendar: String
        var runAsCaller: String
        /// Its units; nil when they cannot be made (`failure` says why).
        var units: ScheduleUnits?
        /// Why its timer is not there; nil once systemd has it.
        var failure: String?
    }

    enum State: Sendable {
        /// Nothing applied yet.
        case initial
        /// No service manager to make timers with: why, and the schedules of the configuration in force.
        case unavailable(reason: String, entries: [String: Entry])
        /// The timers made on `bus`, by playbook.
        case running(bus: SystemdBus, entries: [String: Entry])
        /// Shut down: the timers are removed.
        case stopped
    }

    private(set) var state: State = .initial
    let store: ConfigStore
    private let connect: @Sendable () async -> Result<SystemdBus, SystemdBus.Failure>
    /// runvoyctl, or nil when it was not found (every schedule then fails, saying so).
    let client: String?
    let logger: Logger

    init(
        store: ConfigStore, client: String? = ScheduleManager.defaultClient(), logger: Logger,
        connect: @escaping @Sendable () async -> Result<SystemdBus, SystemdBus.Failure>
    ) {
        self.store = store
        self.client = client
        self.logger = logger
        self.connect = connect
    }

    /// The manager that makes its timers on the bus connection `units` keeps.
    init(store: ConfigStore, units: UnitContainment, logger: Logger) {
        self.init(store: store, logger: logger) {
            await units.bus().mapError { error in
                if case .sandboxUnavailable(let why) = error.stage { return SystemdBus.Failure(message: why) }
                return SystemdBus.Failure(message: error.description)
            }
        }
    }

    func run() async throws {
        let (changes, continuation) = AsyncStream.makeStream(
            of: DaemonConfig.self, bufferingPolicy: .bufferingNewest(1))
        // The configuration now, then after every reload (and change of grants, which changes no schedule).
        store.observe { continuation.yield($0) }
        for await config in changes.cancelOnGracefulShutdown() {
            await apply(config)
        }
        continuation.finish()
        await removeAll()
    }

    /// Makes the timers of `config`'s schedules, replacing those that changed and removing those that went away.
    func apply(_ config: DaemonConfig) async {
        if case .stopped = state { return }
        let desired = Self.entries(config, client: client)
        let bus: SystemdBus
        switch await connect() {
        case .failure(let failure):
            // Said once per change, not at every change of grants.
            if case .unavailable(failure.message, desired) = state { return }
            if !desired.isEmpty { logger.warning("schedules are inactive: \(failure.message)") }
            state = .unavailable(reason: failure.message, entries: desired)
            return
        case .success(let connected): bus = connected
        }
        var previous: [String: Entry] = [:]
        if case .running(_, let entries) = state {
            previous = entries
        } else {
            await removeLeftovers(bus)
        }
        var entries = desired
        for (name, old) in previous where old.units != nil && desired[name]?.units != old.units {
            await remove(bus, old)
        }
        for (name, entry) in desired {
            guard let units = entry.units else {
                if previous[name] != entry {
                    logger.error("schedule of playbook \(name) not made: \(entry.failure ?? "")")
                }
                continue
            }
            if let old = previous[name], old.units == units, old.failure == nil {
                continue
            }
            entries[name]?.failure = await create(bus, units)
        }
        state = .running(bus: bus, entries: entries)
    }

    /// Removes every schedule's timer (shutdown): they come back when runvoyd starts again.
    func removeAll() async {
        if case .running(let bus, let entries) = state {
            for entry in entries.values where entry.units != nil { await remove(bus, entry) }
        }
        state = .stopped
    }

    /// What to make for each schedule of `config`, by playbook.
    static func entries(_ config: DaemonConfig, client: String?) -> [String: Entry] {
        var entries: [String: Entry] = [:]
        for playbook in config.playbooks {
            guard let schedule = playbook.schedule else { continue }
            var entry = Entry(playbook: playbook.name, calendar: schedule.calendar, runAsCaller: schedule.runAsCaller)
            if let client {
                do throws(ScheduleUnits.Invalid) {
                    entry.units = try ScheduleUnits(
                        playbook: playbook.name, schedule: schedule, client: client, socket: config.socket.path)
                } catch {
                    entry.failure = error.description
                }
            } else {
                let candidates = defaultClientCandidates().joined(separator: ", ")
                entry.failure = "runvoyctl is not found next to runvoyd (\(candidates))"
            }
            entries[playbook.name] = entry
        }
        return entries
    }
}
