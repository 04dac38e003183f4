/// How runvoyd confines the processes of its executions (`containment:`), chosen once at start-up.
public enum ContainmentSetting: String, Sendable, Equatable, CaseIterable {
    /// A cgroup per execution when the daemon has a delegated cgroup v2 subtree, else a child subreaper.
    case auto
    /// A cgroup per execution; the daemon does not start without a delegated cgroup v2 subtree.
    case cgroup
    /// The daemon is a child subreaper and finds an execution's processes by session, process group, descent
    /// and audit session.
    case subreaper
}

/// What happens to the other processes of an execution when its main process exits (`leftovers:`).
public enum LeftoverPolicy: String, Sendable, Equatable, CaseIterable {
    /// They are killed at once (and counted in the audit trail).
    case kill
    /// The execution runs on until they have all exited, or its timeout ends them.
    case wait
}

/// An executor's cgroup limits (`limits:`), written to each execution's cgroup. nil leaves the kernel's default.
public struct ExecutionLimits: Sendable, Equatable {
    /// `memory.max`, bytes.
    public var memoryMax: Int64?
    /// `memory.swap.max`, bytes.
    public var memorySwapMax: Int64?
    /// `cpu.max`, percent of one CPU (150 = one and a half CPUs).
    public var cpuQuota: Int?
    /// `cpu.weight`, 1-10000.
    public var cpuWeight: Int?
    /// `pids.max`.
    public var tasksMax: Int?
    /// `io.weight`, 1-10000.
    public var ioWeight: Int?

    public init() {}

    /// The cgroup files and the values written to them, in a fixed order.
    public var cgroupFiles: [(file: String, value: String)] {
        var files: [(String, String)] = []
        if let memoryMax { files.append(("memory.max", String(memoryMax))) }
        if let memorySwapMax { files.append(("memory.swap.max", String(memorySwapMax))) }
        if let cpuQuota { files.append(("cpu.max", "\(cpuQuota * 1000) 100000")) }
        if let cpuWeight { files.append(("cpu.weight", String(cpuWeight))) }
        if let tasksMax { files.append(("pids.max", String(tasksMax))) }
        if let ioWeight { files.append(("io.weight", "default \(ioWeight)")) }
        return files
    }

    /// The controller each file belongs to.
    public static func controller(of file: String) -> String { String(file.prefix { $0 != "." }) }
}

/// Resource limits set in the child before it execs (`rlimits:`), soft and hard alike.
public struct ChildResourceLimits: Sendable, Equatable {
    /// RLIMIT_NOFILE.
    public var openFiles: UInt64?
    /// RLIMIT_NPROC (per user, as the kernel counts it).
    public var processes: UInt64?
    /// RLIMIT_CORE, bytes: 0 (no core dumps) unless the executor says otherwise.
    public var coreBytes: UInt64? = 0

    public init() {}
}
