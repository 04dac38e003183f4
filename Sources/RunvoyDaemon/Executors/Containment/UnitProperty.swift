import CSystemd
import Glibc
import RunvoyConfig
import RunvoyKit

/// One property of a transient unit as StartTransientUnit takes it: its name, and its value in the D-Bus type
/// systemd expects for it (`signature`).
enum UnitProperty: Sendable, Equatable {
    case boolean(String, Bool)
    case string(String, String)
    case uint64(String, UInt64)
    case uint32(String, UInt32)
    case int32(String, Int32)
    case strings(String, [String])
    /// `(bas)`: SystemCallFilter and RestrictAddressFamilies.
    case filter(String, allow: Bool, [String])
    /// `h`: a file descriptor sd-bus passes to systemd (a duplicate; the daemon keeps its own).
    case fileDescriptor(String, Int32)
    /// ExecStart, `a(sasb)`.
    case execStart(path: String, argv: [String])
    /// EnvironmentFiles, `a(sb)`.
    case environmentFile(String)
    /// A timer's TimersCalendar, `a(ss)`: one `OnCalendar` expression.
    case onCalendar(String)

    var name: String {
        switch self {
        case .boolean(let name, _), .string(let name, _), .uint64(let name, _), .uint32(let name, _),
            .int32(let name, _), .strings(let name, _), .filter(let name, _, _), .fileDescriptor(let name, _):
            name
        case .execStart: "ExecStart"
        case .environmentFile: "EnvironmentFiles"
        case .onCalendar: "TimersCalendar"
        }
    }

    /// The D-Bus type of the value, as systemd's bus-unit-util.c appends it.
    var signature: String {
        switch self {
        case .boolean: "b"
        case .string: "s"
        case .uint64: "t"
        case .uint32: "u"
        case .int32: "i"
        case .strings: "as"
        case .filter: "(bas)"
        case .fileDescriptor: "h"
        case .execStart: "a(sasb)"
        case .environmentFile: "a(sb)"
        case .onCalendar: "a(ss)"
        }
    }

    /// Appends `(sv)` for this property to an open `a(sv)` of `message`. Returns 0 or a negative errno.
    func append(to message: OpaquePointer) -> Int32 {
        switch self {
        case .boolean(let name, let value): return runvoy_bus_prop_b(message, name, value ? 1 : 0)
        case .string(let name, let value): return runvoy_bus_prop_s(message, name, value)
        case .uint64(let name, let value): return runvoy_bus_prop_t(message, name, value)
        case .uint32(let name, let value): return runvoy_bus_prop_u(message, name, value)
        case .int32(let name, let value): return runvoy_bus_prop_i(message, name, value)
        case .fileDescriptor(let name, let fd): return runvoy_bus_prop_h(message, name, fd)
        case .environmentFile(let path): return runvoy_bus_prop_environment_file(message, path)
        case .onCalendar(let calendar): return runvoy_bus_prop_on_calendar(message, calendar)
        case .strings(let name, let values):
            return Self.withStrv(values) { runvoy_bus_prop_as(message, name, $0) }
        case .filter(let name, let allow, let values):
            return Self.withStrv(values) { runvoy_bus_prop_bas(message, name, allow ? 1 : 0, $0) }
        case .execStart(let path, let argv):
            return Self.withStrv(argv) { runvoy_bus_prop_exec_start(message, path, $0) }
        }
    }

    /// `strings` as a NULL-terminated `char **` for the length of `body`.
    static func withStrv(
        _ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32
    ) -> Int32 {
        let pointers = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() { pointers[index] = strdup(string) }
        pointers[strings.count] = nil
        defer {
            for index in 0..<strings.count { free(pointers[index]) }
            pointers.deallocate()
        }
        return body(pointers)
    }
}

/// What one execution of a sandboxed executor's unit is made of: the command, its identity and directory, its
/// standard streams, its environment (in a root-only file, never in a property: properties are readable by every
/// user over D-Bus), the executor's sandbox, limits and rlimits, and what keeps the unit until its end is read.
struct UnitRecipe: Sendable {
    var executionID: String
    var executorName: String
    var path: String
    var argv: [String]
    var workingDirectory: String
    var runAs: RunAs?
    /// The command's standard input, output and error (the same descriptors the normal spawner gives a child).
    var stdio: (stdin: Int32, stdout: Int32, stderr: Int32)
    var environmentFile: String
    var executor: ExecutorConfig

    /// `runvoy-<execution id>.service`.
    static func unitName(_ executionID: String) -> String { "runvoy-\(executionID).service" }

    /// The slice every execution unit is in (packaging/systemd/runvoy.slice).
    static let slice = "runvoy.slice"

    /// How long systemd may take to execute the command (`TimeoutStartUSec`): 60 s.
    static let startTimeoutUsec: UInt64 = 60_000_000

    var properties: [UnitProperty] {
        var list: [UnitProperty] = [
            .string("Description", "runvoy execution \(executionID) (executor \(executorName))"),
            .string("Slice", Self.slice),
            .string("Type", "exec"),
            // The start job (fork, sandbox set-up, execve) ends within this, whatever the system's
            // DefaultTimeoutStartSec says (it may be infinity): a launch never waits for ever.
            .uint64("TimeoutStartUSec", Self.startTimeoutUsec),
            // Held until the daemon has read how it ended (UnrefUnit), then collected even when it failed.
            .boolean("AddRef", true),
            .string("CollectMode", "inactive-or-failed"),
            // systemd substitutes `$NAME`/`${NAME}` in ExecStart's argv with the unit's environment (secrets
            // included) and splits whole-word `$NAME`: `$$` is its escape for `$`, so the command gets the argv
            // the rules checked and the audit trail shows, byte for byte.
            .execStart(path: path, argv: argv.map { $0.replacingOccurrences(of: "$", with: "$$") }),
            .string("WorkingDirectory", workingDirectory),
            .fileDescriptor("StandardInputFileDescriptor", stdio.stdin),
            .fileDescriptor("StandardOutputFileDescriptor", stdio.stdout),
            .fileDescriptor("StandardErrorFileDescriptor", stdio.stderr),
            .environmentFile(environmentFile),
            // As a command the daemon spawns itself: SIGPIPE at its default.
            .boolean("IgnoreSIGPIPE", false),
            .boolean("CPUAccounting", true), .boolean("IOAccounting", true), .boolean("MemoryAccounting", true),
            .boolean("TasksAccounting", true),
        ]
        if let runAs {
            list.append(.string("User", runAs.user))
            if let group = runAs.group { list.append(.string("Group", group)) }
        }
        switch executor.leftovers {
        // The main process's exit stops the unit, and what else runs gets SIGKILL at once.
        case .kill: list.append(.int32("KillSignal", SIGKILL))
        // The unit stays active until every process in its cgroup has exited.
        case .wait: list.append(.string("ExitType", "cgroup"))
        }
        list += Self.limits(executor.limits, executor.rlimits)
        list += (executor.sandbox?.properties ?? []).map(Self.property)
        return list
    }

    static func limits(_ limits: ExecutionLimits, _ rlimits: ChildResourceLimits) -> [UnitProperty] {
        var list: [UnitProperty] = []
        if let value = limits.memoryMax { list.append(.uint64("MemoryMax", UInt64(value))) }
        if let value = limits.memorySwapMax { list.append(.uint64("MemorySwapMax", UInt64(value))) }
        // Percent of one CPU as CPU time per second: 100 % is 1 s per second.
        if let value = limits.cpuQuota { list.append(.uint64("CPUQuotaPerSecUSec", UInt64(value) * 10_000)) }
        if let value = limits.cpuWeight { list.append(.uint64("CPUWeight", UInt64(value))) }
        if let value = limits.tasksMax { list.append(.uint64("TasksMax", UInt64(value))) }
        if let value = limits.ioWeight { list.append(.uint64("IOWeight", UInt64(value))) }
        if let value = rlimits.openFiles { list.append(.uint64("LimitNOFILE", value)) }
        if let value = rlimits.processes { list.append(.uint64("LimitNPROC", value)) }
        // UInt64.max (`unlimited`) is systemd's infinity too.
        if let value = rlimits.coreBytes { list.append(.uint64("LimitCORE", value)) }
        return list
    }

    static func property(_ sandbox: SandboxProperty) -> UnitProperty {
        switch sandbox.value {
        case .boolean(let value): .boolean(sandbox.name, value)
        case .word(let word): .string(sandbox.name, word)
        case .strings(let values): .strings(sandbox.name, values)
        case .capabilities(let mask): .uint64(sandbox.name, mask)
        case .filter(let allow, let names): .filter(sandbox.name, allow: allow, names)
        case .mode(let mode): .uint32(sandbox.name, mode)
        }
    }
}
