/// What an execution's processes used, as the kernel accounted it (`usage` of `status` and `list`). A nil figure
/// is one the source cannot give (docs/PROTOCOL.md says which and why).
public struct ResourceUsage: Codable, Sendable, Equatable {
    /// CPU time in user and in kernel mode, microseconds.
    public var cpuUserUsec: Int64?
    public var cpuSystemUsec: Int64?
    /// The peak of the whole cgroup's memory (`memory.peak`); cgroup only.
    public var memoryPeakBytes: Int64?
    /// The most processes and threads at once (`pids.peak`); cgroup only.
    public var tasksPeak: Int64?
    /// Bytes read from and written to block devices.
    public var ioReadBytes: Int64?
    public var ioWriteBytes: Int64?
    /// Where the figures come from: `cgroup` (every process of the execution) or `rusage` (the main process and
    /// the children it waited for).
    public var source: String

    public init(
        cpuUserUsec: Int64? = nil, cpuSystemUsec: Int64? = nil, memoryPeakBytes: Int64? = nil,
        tasksPeak: Int64? = nil, ioReadBytes: Int64? = nil, ioWriteBytes: Int64? = nil, source: String
    ) {
        self.cpuUserUsec = cpuUserUsec
        self.cpuSystemUsec = cpuSystemUsec
        self.memoryPeakBytes = memoryPeakBytes
        self.tasksPeak = tasksPeak
        self.ioReadBytes = ioReadBytes
        self.ioWriteBytes = ioWriteBytes
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case source
        case cpuUserUsec = "cpu_user_usec"
        case cpuSystemUsec = "cpu_system_usec"
        case memoryPeakBytes = "memory_peak_bytes"
        case tasksPeak = "tasks_peak"
        case ioReadBytes = "io_read_bytes"
        case ioWriteBytes = "io_write_bytes"
    }

    /// Writes every member, absent ones as null.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cpuUserUsec, forKey: .cpuUserUsec)
        try c.encode(cpuSystemUsec, forKey: .cpuSystemUsec)
        try c.encode(memoryPeakBytes, forKey: .memoryPeakBytes)
        try c.encode(tasksPeak, forKey: .tasksPeak)
        try c.encode(ioReadBytes, forKey: .ioReadBytes)
        try c.encode(ioWriteBytes, forKey: .ioWriteBytes)
        try c.encode(source, forKey: .source)
    }
}
