import CRunvoyPosix
import CSystemd
import Foundation
import Glibc
import RunvoyKit

/// The daemon's connection to the system bus, for the service manager's transient units. One dedicated thread owns
/// the sd-bus connection (sd-bus objects are not thread-safe): it runs the work queued with `perform`, dispatches
/// the signals it follows (JobRemoved, units' PropertiesChanged) and otherwise sleeps in `poll`, so no async task
/// ever blocks on the bus. Calls from that thread block it for one round trip to systemd.
final class SystemdBus: Sendable {
    /// What sd-bus or systemd said: the D-Bus error's name and message, or the errno's text.
    struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// A started unit: its object path, main process (0 if it already exited) and cgroup (relative to the cgroup
    /// v2 mount).
    struct Started: Sendable, Equatable {
        var objectPath: String
        var mainPID: pid_t
        var controlGroup: String
    }

    /// How a unit ended: its main process's `CLD_*` code and status, its result, and what systemd kept of its
    /// accounting (nil where it has none).
    struct Ended: Sendable, Equatable {
        var code: Int32
        var status: Int32
        var result: String
        var cpuNsec: UInt64?
        var ioReadBytes: UInt64?
        var ioWriteBytes: UInt64?
    }

    private struct Handle: @unchecked Sendable {
        let bus: OpaquePointer
    }

    private struct State: ~Copyable {
        var work: [@Sendable (OpaquePointer?) -> Void] = []
        /// Start jobs not finished yet, by job object path.
        var jobs: [String: CheckedContinuation<Result<Started, Failure>, Never>] = [:]
        /// Units whose end is awaited, by object path.
        var ends: [String: CheckedContinuation<Result<Ended, Failure>, Never>] = [:]
        /// Why the connection is gone, once it is.
        var broken: String?
    }

    private let handle: Handle
    private let wakeFD: Int32
    private let state = Mutex(State())

    private init(_ bus: OpaquePointer, wakeFD: Int32) {
        handle = Handle(bus: bus)
        self.wakeFD = wakeFD
    }

    /// Connects to the system bus and subscribes to systemd's signals, on the calling thread (start-up).
    static func connect() -> Result<SystemdBus, Failure> {
        var bus: OpaquePointer?
        var error = [CChar](repeating: 0, count: Int(RUNVOY_BUS_ERR_LEN))
        let r = runvoy_bus_open_system(&bus, &error)
        guard r >= 0, let bus else { return .failure(Failure(message: Self.text(error, r))) }
        return start(bus)
    }

    /// A direct connection over the connected socket `fd` to something that answers as systemd does (tests).
    static func connect(fd: Int32) -> Result<SystemdBus, Failure> {
        var bus: OpaquePointer?
        let r = runvoy_bus_open_fd(fd, 0, &bus)
        guard r >= 0, let bus else { return .failure(Failure(message: SystemError.text(-r))) }
        var error = [CChar](repeating: 0, count: Int(RUNVOY_BUS_ERR_LEN))
        let subscribed = runvoy_bus_subscribe(bus, &error)
        guard subscribed >= 0 else { return .failure(Failure(message: Self.text(error, subscribed))) }
        return start(bus)
    }

    /// Follows the signals on `bus` and starts the thread that owns it.
    private static func start(_ bus: OpaquePointer) -> Result<SystemdBus, Failure> {
        let wake = runvoy_eventfd()
        guard wake >= 0 else {
            sd_bus_flush_close_unref(bus)
            return .failure(Failure(message: "eventfd: \(SystemError.text(errno))"))
        }
        let connection = SystemdBus(bus, wakeFD: wake)
        // The connection lives as long as the process: the callbacks' reference is never released.
        let userdata = Unmanaged.passRetained(connection).toOpaque()
        let matched = runvoy_bus_add_matches(bus, SystemdBus.onJobRemoved, SystemdBus.onPropertiesChanged, userdata)
        guard matched >= 0 else { return .failure(Failure(message: "add match: \(SystemError.text(-matched))")) }
        let thread = Thread { connection.loop() }
        thread.name = "runvoyd-sd-bus"
        thread.start()
        return .success(connection)
    }

    static func text(_ buffer: [CChar], _ r: Int32) -> String {
        let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return message.isEmpty ? SystemError.text(-r) : message
    }

    /// Runs `body` on the bus thread with the connection, or with nil once the connection is gone.
    func perform(_ body: @escaping @Sendable (OpaquePointer?) -> Void) {
        let broken = state.withLock { state -> Bool in
            if state.broken != nil { return true }
            state.work.append(body)
            return false
        }
        if broken { return body(nil) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Why the connection is gone, or nil while it works.
    var brokenReason: String? { state.withLock { $0.broken } }

    // MARK: - Units

    /// Starts a transient unit and returns once its start job has finished: with `Type=exec`, once the command has
    /// been executed (or failed to be).
    func startUnit(_ name: String, properties: [UnitProperty]) async -> Result<Started, Failure> {
        await withCheckedContinuation { continuation in
            perform { bus in
                guard let bus else { return continuation.resume(returning: .failure(self.gone)) }
                switch Self.callStart(bus, name, properties) {
                case .failure(let failure): continuation.resume(returning: .failure(failure))
                // Registered before the bus thread dispatches anything else, so its JobRemoved is not missed.
                case .success(let job): self.state.withLock { $0.jobs[job] = continuation }
                }
            }
        }
    }

    /// Suspends until the unit at `objectPath` is inactive or failed with no job pending, and returns how its main
    /// process ended.
    func waitEnd(_ objectPath: String) async -> Result<Ended, Failure> {
        await withCheckedContinuation { continuation in
            perform { bus in
                guard let bus else { return continuation.resume(returning: .failure(self.gone)) }
                self.state.withLock { $0.ends[objectPath] = continuation }
                self.checkEnd(bus, objectPath)
            }
        }
    }

    /// Drops the reference `AddRef` took: the unit is collected once inactive.
    func unref(_ name: String) {
        perform { bus in
            guard let bus else { return }
            _ = runvoy_bus_unref_unit(bus, name, nil)
        }
    }

    /// Ends a unit whose launch failed after StartTransientUnit was sent (systemd may have run the start job, or
    /// may still run it: a reply that timed out, a read that failed after the job): SIGKILL to all of it, its
    /// start job cancelled or the unit stopped, then the reference dropped.
    func abandon(_ name: String) {
        perform { bus in
            guard let bus else { return }
            _ = runvoy_bus_kill_unit(bus, name, SIGKILL, nil)
            _ = runvoy_bus_stop_unit(bus, name, nil)
            _ = runvoy_bus_unref_unit(bus, name, nil)
        }
    }

    private var gone: Failure { Failure(message: "the system bus connection is gone: \(brokenReason ?? "closed")") }

    private static func callStart(
        _ bus: OpaquePointer, _ name: String, _ properties: [UnitProperty]
    ) -> Result<String, Failure> {
        var message: OpaquePointer?
        var r = runvoy_bus_start_begin(bus, &message, name)
        guard r >= 0, let message else {
            return .failure(Failure(message: "StartTransientUnit: \(SystemError.text(-r))"))
        }
        defer { sd_bus_message_unref(message) }
        for property in properties {
            r = property.append(to: message)
            if r < 0 {
                return .failure(Failure(message: "property \(property.name): \(SystemError.text(-r))"))
            }
        }
        var job: UnsafeMutablePointer<CChar>?
        var error = [CChar](repeating: 0, count: Int(RUNVOY_BUS_ERR_LEN))
        r = runvoy_bus_start_finish(bus, message, &job, &error)
        guard r >= 0, let job else { return .failure(Failure(message: Self.text(error, r))) }
        defer { free(job) }
        return .success(String(cString: job))
    }

    /// One of the `runvoy_bus_unit_*` reads of the unit at `objectPath`.
    static func readUnit(
        _ bus: OpaquePointer, _ objectPath: String,
        _ body: (
            OpaquePointer, UnsafePointer<CChar>, UnsafeMutablePointer<runvoy_unit_state>, UnsafeMutablePointer<CChar>
        )
            -> Int32 = runvoy_bus_unit_state
    ) -> Result<runvoy_unit_state, Failure> {
        var unit = runvoy_unit_state()
        var error = [CChar](repeating: 0, count: Int(RUNVOY_BUS_ERR_LEN))
        let r = objectPath.withCString { path in
            error.withUnsafeMutableBufferPointer { body(bus, path, &unit, $0.baseAddress!) }
        }
        return r < 0 ? .failure(Failure(message: Self.text(error, r))) : .success(unit)
    }

    /// Resumes the unit's waiter once it is inactive or failed with no job pending: two property reads per
    /// PropertiesChanged, the rest only at the end.
    private func checkEnd(_ bus: OpaquePointer, _ objectPath: String) {
        let outcome: Result<Ended, Failure>
        switch Self.readUnit(bus, objectPath, runvoy_bus_unit_activity) {
        case .failure(let failure):
            outcome = .failure(failure)
        case .success(let activity):
            let active = Self.string(activity.active_state)
            guard (active == "inactive" || active == "failed") && activity.job_id == 0 else { return }
            func figure(_ value: UInt64) -> UInt64? { value == UInt64.max ? nil : value }
            outcome = Self.readUnit(bus, objectPath).map { unit in
                Ended(
                    code: unit.exec_main_code, status: unit.exec_main_status, result: Self.string(unit.result),
                    cpuNsec: figure(unit.cpu_usage_nsec), ioReadBytes: figure(unit.io_read_bytes),
                    ioWriteBytes: figure(unit.io_write_bytes))
            }
        }
        let waiter = state.withLock { $0.ends.removeValue(forKey: objectPath) }
        waiter?.resume(returning: outcome)
    }

    private func jobRemoved(_ bus: OpaquePointer, job: String, unitPath: String, result: String) {
        guard let waiter = state.withLock({ $0.jobs.removeValue(forKey: job) }) else { return }
        guard result == "done" else {
            var detail = "its start job ended '\(result)'"
            if case .success(let unit) = Self.readUnit(bus, unitPath) {
                detail += " (unit result '\(Self.string(unit.result))', status \(unit.exec_main_status))"
            }
            return waiter.resume(returning: .failure(Failure(message: detail)))
        }
        waiter.resume(
            returning: Self.readUnit(bus, unitPath, runvoy_bus_unit_started).map {
                Started(
                    objectPath: unitPath, mainPID: pid_t(bitPattern: $0.main_pid),
                    controlGroup: Self.string($0.control_group))
            })
    }

    static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    // MARK: - The bus thread

    private static let onJobRemoved: sd_bus_message_handler_t = { message, userdata, _ in
        guard let message, let userdata else { return 0 }
        let connection = Unmanaged<SystemdBus>.fromOpaque(userdata).takeUnretainedValue()
        var job: UnsafePointer<CChar>?
        var name: UnsafePointer<CChar>?
        var result: UnsafePointer<CChar>?
        guard runvoy_bus_read_job_removed(message, &job, &name, &result) >= 0, let job, let name, let result,
            let bus = sd_bus_message_get_bus(message)
        else { return 0 }
        var path: UnsafeMutablePointer<CChar>?
        guard runvoy_bus_unit_path(name, &path) >= 0, let path else { return 0 }
        defer { free(path) }
        connection.jobRemoved(
            bus, job: String(cString: job), unitPath: String(cString: path), result: String(cString: result))
        return 0
    }

    private static let onPropertiesChanged: sd_bus_message_handler_t = { message, userdata, _ in
        guard let message, let userdata, let pathPointer = sd_bus_message_get_path(message),
            let bus = sd_bus_message_get_bus(message)
        else { return 0 }
        let connection = Unmanaged<SystemdBus>.fromOpaque(userdata).takeUnretainedValue()
        let path = String(cString: pathPointer)
        if connection.state.withLock({ $0.ends[path] != nil }) { connection.checkEnd(bus, path) }
        return 0
    }

    private func loop() {
        let bus = handle.bus
        var fds = [pollfd(), pollfd()]
        while true {
            let work = state.withLock { state -> [@Sendable (OpaquePointer?) -> Void] in
                defer { state.work = [] }
                return state.work
            }
            for item in work { item(bus) }
            var processed: Int32 = 1
            while processed > 0 { processed = sd_bus_process(bus, nil) }
            if processed < 0 { return fail("sd_bus_process: \(SystemError.text(-processed))") }
            fds[0] = pollfd(
                fd: sd_bus_get_fd(bus), events: Int16(truncatingIfNeeded: sd_bus_get_events(bus)), revents: 0)
            fds[1] = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            _ = poll(&fds, 2, Self.pollTimeout(bus))
            if fds[1].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
            }
        }
    }

    /// sd-bus's next timeout (absolute, CLOCK_MONOTONIC) in milliseconds from now, or -1 for none.
    private static func pollTimeout(_ bus: OpaquePointer) -> Int32 {
        var deadline: UInt64 = 0
        guard sd_bus_get_timeout(bus, &deadline) >= 0, deadline != UInt64.max else { return -1 }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nowUsec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        guard deadline > nowUsec else { return 0 }
        return Int32(clamping: (deadline - nowUsec + 999) / 1000)
    }

    /// The connection failed: every waiter learns it, and later work runs with no connection.
    private func fail(_ reason: String) {
        let (work, jobs, ends) = state.withLock { state in
            state.broken = reason
            defer {
                state.work = []
                state.jobs = [:]
                state.ends = [:]
            }
            return (state.work, state.jobs, state.ends)
        }
        for item in work { item(nil) }
        let failure = Failure(message: "the system bus connection is gone: \(reason)")
        for waiter in jobs.values { waiter.resume(returning: .failure(failure)) }
        for waiter in ends.values { waiter.resume(returning: .failure(failure)) }
    }
}
