import CSystemd
import Foundation
import Glibc
import RunvoyKit

@testable import RunvoyDaemon

/// The service manager's side of a direct sd-bus connection, enough of it for `SystemdBus`: Subscribe,
/// StartTransientUnit (recorded as sd-bus dumps it, answered with a job whose JobRemoved follows), the units'
/// properties (Properties.Get), their end (PropertiesChanged), UnrefUnit. It writes `output` to the unit's
/// standard output descriptor and closes what it was given, as a command that printed it and exited would.
final class FakeSystemd: @unchecked Sendable {
    struct Unit {
        var name: String
        var activeState = "active"
        var result = "success"
        var mainPID: UInt32 = 4242
        var code: Int32 = 0
        var status: Int32 = 0
    }

    private struct State {
        var starts: [String] = []
        var units: [String: Unit] = [:]
        var unrefs: [String] = []
        /// StopUnit and KillUnit calls, by unit name (review PoC).
        var stops: [String] = []
        var changed: [String] = []
        var jobs = 0
        var stopped = false
    }

    /// A timer's next elapse (Unix time, microseconds).
    static let nextElapseUsec: UInt64 = 1_900_000_000_000_000

    /// The job result StartTransientUnit's JobRemoved reports.
    let jobResult: String
    /// What the "command" writes to its standard output.
    let output: String
    /// Properties whose Get is answered with an error (a fault injected after the start job, review PoC).
    let failingProperties: Set<String>
    let clientFD: Int32
    private let serverFD: Int32
    private let state = Mutex(State())
    private var thread: Thread?

    init(jobResult: String = "done", output: String = "", failingProperties: Set<String> = []) throws {
        self.jobResult = jobResult
        self.output = output
        self.failingProperties = failingProperties
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError("socketpair")
        }
        clientFD = fds[0]
        serverFD = fds[1]
        let thread = Thread { [self] in self.serve() }
        thread.start()
        self.thread = thread
    }

    /// The StartTransientUnit calls, as `sd_bus_message_dump` writes them.
    var starts: [String] { state.withLock { $0.starts } }
    var unrefs: [String] { state.withLock { $0.unrefs } }
    var stops: [String] { state.withLock { $0.stops } }
    /// The object paths of the units started so far.
    var unitPaths: [String] { state.withLock { Array($0.units.keys) } }

    /// The unit at `path` ends: inactive, its main process with `code` and `status`, PropertiesChanged sent.
    func finish(_ path: String, code: Int32, status: Int32) {
        state.withLock { state in
            state.units[path]?.activeState = code == 1 && status == 0 ? "inactive" : "failed"
            state.units[path]?.code = code
            state.units[path]?.status = status
            state.changed.append(path)
        }
    }

    /// Closes the connection: whoever waits on it learns it is gone.
    func stop() { state.withLock { $0.stopped = true } }

    private func serve() {
        var bus: OpaquePointer?
        guard runvoy_bus_open_fd(serverFD, 1, &bus) >= 0, let bus else { return }
        sd_bus_set_sender(bus, "org.freedesktop.systemd1")
        let userdata = Unmanaged.passUnretained(self).toOpaque()
        sd_bus_add_fallback(bus, nil, "/org/freedesktop/systemd1", Self.handler, userdata)
        while true {
            while sd_bus_process(bus, nil) > 0 {}
            let (changed, stopped) = state.withLock { state in
                defer { state.changed = [] }
                return (state.changed, state.stopped)
            }
            if stopped { break }
            for path in changed {
                signal(bus, path: path, interface: "org.freedesktop.DBus.Properties", "PropertiesChanged")
            }
            _ = sd_bus_wait(bus, 10_000)
        }
        sd_bus_flush_close_unref(bus)
    }

    private static let handler: sd_bus_message_handler_t = { message, userdata, _ in
        guard let message, let userdata else { return 0 }
        return Unmanaged<FakeSystemd>.fromOpaque(userdata).takeUnretainedValue().handle(message)
    }

    private func handle(_ message: OpaquePointer) -> Int32 {
        let member = String(cString: sd_bus_message_get_member(message))
        let bus = sd_bus_message_get_bus(message)!
        var reply: OpaquePointer?
        sd_bus_message_new_method_return(message, &reply)
        defer { sd_bus_message_unref(reply) }
        switch member {
        case "StartTransientUnit":
            let job = start(message)
            _ = job.withCString { sd_bus_message_append_basic(reply, CChar(UInt8(ascii: "o")), $0) }
            sd_bus_send(bus, reply, nil)
            jobRemoved(bus, job: job, message: message)
            return 1
        case "Get":
            var interface: UnsafePointer<CChar>?
            var name: UnsafePointer<CChar>?
            sd_bus_message_rewind(message, 1)
            sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &interface)
            sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &name)
            let path = String(cString: sd_bus_message_get_path(message))
            guard let unit = state.withLock({ $0.units[path] }), !failingProperties.contains(String(cString: name!))
            else { return reject(bus, message) }
            property(reply!, String(cString: name!), unit)
        case "UnrefUnit":
            var name: UnsafePointer<CChar>?
            sd_bus_message_rewind(message, 1)
            sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &name)
            state.withLock { $0.unrefs.append(String(cString: name!)) }
        case "ListUnitsByPatterns":
            // What the fake has started that is still there (schedules' leftovers).
            sd_bus_message_open_container(reply, CChar(UInt8(ascii: "a")), "(ssssssouso)")
            sd_bus_message_close_container(reply)
        case "StopUnit", "KillUnit":
            var name: UnsafePointer<CChar>?
            sd_bus_message_rewind(message, 1)
            sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &name)
            state.withLock { $0.stops.append(String(cString: name!)) }
            if member == "StopUnit" {
                _ = "/org/freedesktop/systemd1/job/stop".withCString {
                    sd_bus_message_append_basic(reply, CChar(UInt8(ascii: "o")), $0)
                }
            }
        default:
            break
        }
        sd_bus_send(bus, reply, nil)
        return 1
    }

    private func reject(_ bus: OpaquePointer, _ message: OpaquePointer) -> Int32 {
        var error = sd_bus_error(name: nil, message: nil, _need_free: 0)
        sd_bus_error_set(&error, "org.freedesktop.systemd1.NoSuchUnit", "no such unit")
        sd_bus_reply_method_error(message, &error)
        sd_bus_error_free(&error)
        _ = bus
        return 1
    }

    /// Records the call, makes its unit, and plays the command: writes `output` to its stdout descriptor.
    private func start(_ message: OpaquePointer) -> String {
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        let file = open_memstream(&buffer, &size)
        sd_bus_message_dump(message, file, 0)
        fclose(file)
        let dump = buffer.map { String(cString: $0) } ?? ""
        free(buffer)
        var name: UnsafePointer<CChar>?
        sd_bus_message_rewind(message, 1)
        sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &name)
        let unitName = String(cString: name!)
        var pathPointer: UnsafeMutablePointer<CChar>?
        runvoy_bus_unit_path(unitName, &pathPointer)
        let path = String(cString: pathPointer!)
        free(pathPointer)
        playCommand(message)
        let auxiliary = auxiliaryUnit(message)
        return state.withLock { state in
            state.starts.append(dump)
            state.units[path] = Unit(name: unitName)
            if let auxiliary, let auxiliaryPath = SystemdBus.unitPath(auxiliary) {
                state.units[auxiliaryPath] = Unit(name: auxiliary, activeState: "inactive")
            }
            state.jobs += 1
            return "/org/freedesktop/systemd1/job/\(state.jobs)"
        }
    }

    /// The auxiliary unit's name (a schedule's service), if the call has one.
    private func auxiliaryUnit(_ message: OpaquePointer) -> String? {
        sd_bus_message_rewind(message, 1)
        sd_bus_message_skip(message, "ssa(sv)")
        guard sd_bus_message_enter_container(message, CChar(UInt8(ascii: "a")), "(sa(sv))") > 0,
            sd_bus_message_enter_container(message, CChar(UInt8(ascii: "r")), "sa(sv)") > 0
        else { return nil }
        var name: UnsafePointer<CChar>?
        sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &name)
        return name.map { String(cString: $0) }
    }

    /// Finds StandardOutputFileDescriptor in the properties and writes `output` to it.
    private func playCommand(_ message: OpaquePointer) {
        sd_bus_message_rewind(message, 1)
        var skipped: UnsafePointer<CChar>?
        sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &skipped)
        sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &skipped)
        guard sd_bus_message_enter_container(message, CChar(UInt8(ascii: "a")), "(sv)") > 0 else { return }
        while sd_bus_message_enter_container(message, CChar(UInt8(ascii: "r")), "sv") > 0 {
            var name: UnsafePointer<CChar>?
            sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &name)
            if String(cString: name!) == "StandardOutputFileDescriptor",
                sd_bus_message_enter_container(message, CChar(UInt8(ascii: "v")), "h") > 0
            {
                var fd: Int32 = -1
                sd_bus_message_read_basic(message, CChar(UInt8(ascii: "h")), &fd)
                var bytes = Array(output.utf8)
                _ = write(fd, &bytes, bytes.count)
                sd_bus_message_exit_container(message)
            } else {
                sd_bus_message_skip(message, "v")
            }
            sd_bus_message_exit_container(message)
        }
    }

    private func jobRemoved(_ bus: OpaquePointer, job: String, message: OpaquePointer) {
        var name: UnsafePointer<CChar>?
        sd_bus_message_rewind(message, 1)
        sd_bus_message_read_basic(message, CChar(UInt8(ascii: "s")), &name)
        var signal: OpaquePointer?
        sd_bus_message_new_signal(
            bus, &signal, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "JobRemoved")
        var id = UInt32(job.split(separator: "/").last.flatMap { UInt32($0) } ?? 0)
        sd_bus_message_append_basic(signal, CChar(UInt8(ascii: "u")), &id)
        _ = job.withCString { sd_bus_message_append_basic(signal, CChar(UInt8(ascii: "o")), $0) }
        sd_bus_message_append_basic(signal, CChar(UInt8(ascii: "s")), name)
        _ = jobResult.withCString { sd_bus_message_append_basic(signal, CChar(UInt8(ascii: "s")), $0) }
        sd_bus_send(bus, signal, nil)
        sd_bus_message_unref(signal)
    }

    private func signal(_ bus: OpaquePointer, path: String, interface: String, _ member: String) {
        var signal: OpaquePointer?
        sd_bus_message_new_signal(bus, &signal, path, interface, member)
        _ = "org.freedesktop.systemd1.Service".withCString {
            sd_bus_message_append_basic(signal, CChar(UInt8(ascii: "s")), $0)
        }
        sd_bus_message_open_container(signal, CChar(UInt8(ascii: "a")), "{sv}")
        sd_bus_message_close_container(signal)
        sd_bus_message_open_container(signal, CChar(UInt8(ascii: "a")), "s")
        sd_bus_message_close_container(signal)
        sd_bus_send(bus, signal, nil)
        sd_bus_message_unref(signal)
    }

    /// Appends property `name` of `unit` as a variant.
    private func property(_ reply: OpaquePointer, _ name: String, _ unit: Unit) {
        func string(_ value: String) {
            sd_bus_message_open_container(reply, CChar(UInt8(ascii: "v")), "s")
            _ = value.withCString { sd_bus_message_append_basic(reply, CChar(UInt8(ascii: "s")), $0) }
            sd_bus_message_close_container(reply)
        }
        func basic<T>(_ type: String, _ value: T) {
            var value = value
            sd_bus_message_open_container(reply, CChar(UInt8(ascii: "v")), type)
            sd_bus_message_append_basic(reply, CChar(type.utf8.first!), &value)
            sd_bus_message_close_container(reply)
        }
        switch name {
        case "ActiveState": string(unit.activeState)
        case "SubState": string("waiting")
        case "Result": string(unit.result)
        case "ControlGroup": string("/runvoy.slice/" + unit.name)
        case "MainPID": basic("u", unit.mainPID)
        case "ExecMainCode": basic("i", unit.code)
        case "ExecMainStatus": basic("i", unit.status)
        case "CPUUsageNSec": basic("t", UInt64(1_000_000))
        case "IOReadBytes": basic("t", UInt64(4096))
        case "IOWriteBytes": basic("t", UInt64.max)
        case "NextElapseUSecRealtime": basic("t", Self.nextElapseUsec)
        case "LastTriggerUSec": basic("t", UInt64(0))
        case "Job":
            sd_bus_message_open_container(reply, CChar(UInt8(ascii: "v")), "(uo)")
            sd_bus_message_open_container(reply, CChar(UInt8(ascii: "r")), "uo")
            var zero: UInt32 = 0
            sd_bus_message_append_basic(reply, CChar(UInt8(ascii: "u")), &zero)
            _ = "/".withCString { sd_bus_message_append_basic(reply, CChar(UInt8(ascii: "o")), $0) }
            sd_bus_message_close_container(reply)
            sd_bus_message_close_container(reply)
        default: string("")
        }
    }
}
