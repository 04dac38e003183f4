import CSystemd
import Glibc
import RunvoyKit

/// Timers for playbook schedules: a transient timer started together with its service (an auxiliary unit of the
/// same StartTransientUnit call, as systemd-run's `--on-calendar` does), removed again, listed, and read.
extension SystemdBus {
    /// What is read of a schedule's timer and its service.
    struct TimerState: Sendable, Equatable {
        /// The timer's SubState: `waiting` (or `running`) while it counts, `elapsed` once its calendar has no later
        /// time, `dead` when stopped, `failed`.
        var timerState: String
        /// When it fires next (Unix time, microseconds); nil when it will not.
        var nextElapseUsec: UInt64?
        /// When it last fired (Unix time, microseconds); nil when it has not since it was made.
        var lastTriggerUsec: UInt64?
        /// The service's ActiveState, Result and main process's exit status (of its last run).
        var serviceState: String
        var serviceResult: String
        var serviceStatus: Int32
    }

    /// Starts the transient timer `timer` with `properties`, and the service `service` it triggers with
    /// `serviceProperties`, in one call. Returns once systemd has accepted (or refused) them: PID 1 checks the
    /// properties, the calendar among them, before it answers.
    func startTimer(
        _ timer: String, properties: [UnitProperty], service: String, serviceProperties: [UnitProperty]
    ) async -> Result<Void, Failure> {
        await onBus { bus in
            var message: OpaquePointer?
            var r = runvoy_bus_start_begin(bus, &message, timer)
            guard r >= 0, let message else {
                return .failure(Failure(message: "StartTransientUnit: \(SystemError.text(-r))"))
            }
            defer { sd_bus_message_unref(message) }
            if let failure = Self.append(properties, to: message) { return .failure(failure) }
            r = runvoy_bus_start_aux(message, service)
            if r < 0 { return .failure(Failure(message: "auxiliary unit \(service): \(SystemError.text(-r))")) }
            if let failure = Self.append(serviceProperties, to: message) { return .failure(failure) }
            var job: UnsafeMutablePointer<CChar>?
            var error = [CChar](repeating: 0, count: Int(RUNVOY_BUS_ERR_LEN))
            r = runvoy_bus_start_finish_aux(bus, message, &job, &error)
            guard r >= 0 else { return .failure(Failure(message: Self.text(error, r))) }
            free(job)
            return .success(())
        }
    }

    private static func append(_ properties: [UnitProperty], to message: OpaquePointer) -> Failure? {
        for property in properties {
            let r = property.append(to: message)
            if r < 0 { return Failure(message: "property \(property.name): \(SystemError.text(-r))") }
        }
        return nil
    }

    /// Stops each unit (a running service is stopped too) and forgets a failed one, so that it is unloaded. A
    /// unit that is not loaded is no failure. Returns the failures, by unit name.
    func removeUnits(_ names: [String]) async -> [String: Failure] {
        await onBus { bus -> Result<[String: Failure], Failure> in
            var failures: [String: Failure] = [:]
            for name in names {
                var error = [CChar](repeating: 0, count: Int(RUNVOY_BUS_ERR_LEN))
                let r = runvoy_bus_stop_unit(bus, name, &error)
                let text = Self.text(error, r)
                if r < 0 && !text.hasPrefix("org.freedesktop.systemd1.NoSuchUnit") {
                    failures[name] = Failure(message: text)
                }
                // Fails (harmlessly) when the unit is not failed or not loaded.
                _ = runvoy_bus_reset_failed_unit(bus, name, nil)
            }
            return .success(failures)
        }.get(or: { failure in Dictionary(names.map { ($0, failure) }, uniquingKeysWith: { first, _ in first }) })
    }

    /// The names of the loaded units that match the glob `pattern`.
    func listUnits(matching pattern: String) async -> Result<[String], Failure> {
        await onBus { bus in
            var list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
            var error = [CChar](repeating: 0, count: Int(RUNVOY_BUS_ERR_LEN))
            let r = runvoy_bus_list_units(bus, pattern, &list, &error)
            guard r >= 0, let list else { return .failure(Failure(message: Self.text(error, r))) }
            defer { runvoy_bus_free_strv(list) }
            var names: [String] = []
            var index = 0
            while let name = list[index] {
                names.append(String(cString: name))
                index += 1
            }
            return .success(names)
        }
    }

    /// Reads the timer `timer` and the service `service`.
    func timerState(_ timer: String, service: String) async -> Result<TimerState, Failure> {
        await onBus { bus in
            guard let timerPath = Self.unitPath(timer), let servicePath = Self.unitPath(service) else {
                return .failure(Failure(message: "cannot make the units' object paths"))
            }
            var state = runvoy_timer_state()
            var error = [CChar](repeating: 0, count: Int(RUNVOY_BUS_ERR_LEN))
            let r = runvoy_bus_timer_state(bus, timerPath, servicePath, &state, &error)
            guard r >= 0 else { return .failure(Failure(message: Self.text(error, r))) }
            // systemd's "none" for both is 0 or UINT64_MAX.
            func time(_ value: UInt64) -> UInt64? { value == 0 || value == UInt64.max ? nil : value }
            return .success(
                TimerState(
                    timerState: Self.string(state.timer_state), nextElapseUsec: time(state.next_elapse_realtime),
                    lastTriggerUsec: time(state.last_trigger_realtime),
                    serviceState: Self.string(state.service_state), serviceResult: Self.string(state.service_result),
                    serviceStatus: state.exec_main_status))
        }
    }

    static func unitPath(_ name: String) -> String? {
        var path: UnsafeMutablePointer<CChar>?
        guard runvoy_bus_unit_path(name, &path) >= 0, let path else { return nil }
        defer { free(path) }
        return String(cString: path)
    }

    /// Runs `body` on the bus thread and returns what it returns, or the connection's failure once it is gone.
    private func onBus<T: Sendable>(
        _ body: @escaping @Sendable (OpaquePointer) -> Result<T, Failure>
    ) async -> Result<T, Failure> {
        await withCheckedContinuation { continuation in
            perform { bus in
                guard let bus else {
                    let reason = self.brokenReason ?? "closed"
                    return continuation.resume(
                        returning: .failure(Failure(message: "the system bus connection is gone: \(reason)")))
                }
                continuation.resume(returning: body(bus))
            }
        }
    }
}

extension Result {
    /// The success, or what `fallback` makes of the failure.
    fileprivate func get(or fallback: (Failure) -> Success) -> Success {
        switch self {
        case .success(let value): value
        case .failure(let failure): fallback(failure)
        }
    }
}
