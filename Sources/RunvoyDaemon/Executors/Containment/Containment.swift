import CRunvoyPosix
import Glibc
import RunvoyConfig
import RunvoyKit

/// How the processes of executions are confined, as `whoami`, `capabilities` and `health` name it.
enum ContainmentMode: String, Sendable {
    /// Each execution in its own cgroup of the daemon's delegated cgroup v2 subtree.
    case cgroup
    /// The daemon is a child subreaper and finds each execution's processes in /proc.
    case subreaper
    /// Each execution of a sandboxed executor is a transient systemd unit (`UnitContainment`).
    case unit
    /// Only the process group (tests that start executions in process).
    case none
}

/// Confines executions: chosen once at start-up (`ContainmentSelection`), it makes each execution's `Scope`
/// before the command is spawned.
protocol Containment: Sendable {
    var mode: ContainmentMode { get }
    /// What start-up and `health` say besides the mode: controllers missing, tags unavailable.
    var notes: [String] { get }
    /// The scope of a new execution, made before its command is spawned (the command starts inside it).
    func scope(
        executionID: String, executor: ExecutorConfig, caller uid: uid_t
    ) throws(SpawnError) -> any ExecutionScope
}

/// The processes of one execution, beyond its main process (whose process group `Execution` signals itself).
/// Every method may be called from any thread; `signal` and `kill` only before the main process is reaped
/// (`Execution` keeps it a zombie until then, so a process group or session id cannot name another process).
protocol ExecutionScope: Sendable {
    /// What the child does on its way to exec to enter the scope.
    var spawnHooks: SpawnHooks { get }
    /// The command is spawned (`leader`), or failed to (nil): what was only needed for the spawn is released.
    func spawned(leader: pid_t?)
    /// Sends `signal` to every process of the execution but the main one. Returns how many it reached.
    @discardableResult func signal(_ signal: Int32) -> Int
    /// SIGKILL to every process of the execution but the main one. Returns how many there were.
    @discardableResult func kill() -> Int
    /// Whether a process of the execution other than the main one still runs.
    var isPopulated: Bool { get }
    /// The main process has been reaped and the execution is over: remove what the scope made.
    func release()
    /// What the execution's processes used, where the scope can tell.
    func usage() -> ResourceUsage?
    /// Sends `signal` to the main process's process group; whether it reached it. (Default: `kill(-pid)`.)
    func signalMain(_ pid: pid_t, _ signal: Int32) -> Bool
    /// Waits until the main process has exited and returns how. (Default: the reaper, through its pidfd.)
    func waitMain(pidfd: Int32) async -> ExitStatus
}

extension ExecutionScope {
    func signalMain(_ pid: pid_t, _ signal: Int32) -> Bool { pid > 0 && Glibc.kill(-pid, signal) == 0 }
    func waitMain(pidfd: Int32) async -> ExitStatus { await Reaper.shared.wait(pidfd: pidfd) }
}

/// What the child does for its scope between fork and exec.
struct SpawnHooks: Sendable {
    /// An open `cgroup.procs` the child writes itself into, or -1.
    var cgroupProcsFD: Int32 = -1
    /// The cgroup's directory, to create the child in it (clone3 CLONE_INTO_CGROUP), or -1.
    var cgroupDirectoryFD: Int32 = -1
    /// The login uid the child sets (a new audit session: the subreaper's tag), or nil.
    var loginUID: uid_t?
}

/// Only the process group: for tests that start executions with their own spawner.
struct ProcessGroupContainment: Containment {
    var mode: ContainmentMode { .none }
    var notes: [String] { [] }
    func scope(
        executionID: String, executor: ExecutorConfig, caller uid: uid_t
    ) throws(SpawnError) -> any ExecutionScope {
        ProcessGroupScope()
    }
}

struct ProcessGroupScope: ExecutionScope {
    var spawnHooks: SpawnHooks { SpawnHooks() }
    func spawned(leader: pid_t?) {}
    func signal(_ signal: Int32) -> Int { 0 }
    func kill() -> Int { 0 }
    var isPopulated: Bool { false }
    func release() {}
    func usage() -> ResourceUsage? { nil }
}

extension ResourceUsage {
    /// The `RUNVOY_*` fields of the `execution_finished` record: the figures the kernel gave.
    var auditFields: [(String, String)] {
        var fields = [("USAGE_SOURCE", source)]
        let figures: [(String, Int64?)] = [
            ("CPU_USER_USEC", cpuUserUsec), ("CPU_SYSTEM_USEC", cpuSystemUsec), ("MEMORY_PEAK_BYTES", memoryPeakBytes),
            ("TASKS_PEAK", tasksPeak), ("IO_READ_BYTES", ioReadBytes), ("IO_WRITE_BYTES", ioWriteBytes),
        ]
        for (name, value) in figures { if let value { fields.append((name, String(value))) } }
        return fields
    }
}
