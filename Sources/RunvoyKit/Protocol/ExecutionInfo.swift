/// One execution as `list` and `status` report it. Times are milliseconds since the Unix epoch.
///
/// In a reply, `argv` and `envKeys` may be cut to a byte budget (docs/PROTOCOL.md, "The execution history"):
/// `argvTruncated` and `envKeysTruncated` then say so; the history and the audit trail keep them whole.
public struct ExecutionInfo: Codable, Sendable, Equatable {
    public var executionId: String
    public var status: ExecutionStatus
    public var callerUid: UInt32
    /// The caller's user name, or `#UID` when the user database had none.
    public var callerUser: String
    public var callerPid: Int32
    public var executor: String
    /// `user:group` the command ran as.
    public var runAs: String
    public var argv: [String]
    /// Whether this reply carries only the start of `argv` (whole arguments, the last one possibly shortened).
    public var argvTruncated: Bool
    public var workingDirectory: String
    /// Names of the environment variables the caller passed (never their values).
    public var envKeys: [String]
    /// Whether this reply carries only the first of `envKeys` (whole names).
    public var envKeysTruncated: Bool
    public var pid: Int32?
    public var exitCode: Int32?
    public var signal: Int32?
    public var createdAtMs: Int64
    public var startedAtMs: Int64?
    public var finishedAtMs: Int64?
    public var durationUsec: Int64?
    /// Bytes the command wrote to stdout and stderr (all of them, stored or not).
    public var stdoutBytes: Int64
    public var stderrBytes: Int64
    /// Bytes kept in stored output, and bytes left out of it by the per-execution cap.
    public var storedBytes: Int64
    public var droppedBytes: Int64
    /// Whether retention removed the stored output (the record stays).
    public var outputPruned: Bool
    /// The digest of the configuration the execution ran under.
    public var configDigest: String
    /// Why the execution failed to start or was marked lost, when it did.
    public var reason: String?
    /// What its processes used, once it has ended (nil before, and for executions recorded before accounting).
    public var usage: ResourceUsage?
    /// For a `runvoyctl edit` record: the file and its hashes before and after; nil for a command.
    public var edit: EditSummary?
    /// For an execution on a pseudo-terminal (`exec` with `tty`): its window size at the start; nil for pipes.
    public var terminal: TerminalWindow?
    /// Input bytes the command was given, when its executor records input (`record_input`); nil otherwise.
    public var stdinBytes: Int64?
    /// The playbook run it is a step of; absent for an execution of its own.
    public var runId: String?
    /// Its hooks' runs, in the order they ran: in `status` replies only (absent elsewhere).
    public var hooks: [HookRunInfo]?

    public init(
        executionId: String, status: ExecutionStatus, callerUid: UInt32, callerUser: String, callerPid: Int32,
        executor: String, runAs: String, argv: [String], workingDirectory: String, envKeys: [String], pid: Int32?,
        exitCode: Int32?, signal: Int32?, createdAtMs: Int64, startedAtMs: Int64?, finishedAtMs: Int64?,
        durationUsec: Int64?, stdoutBytes: Int64, stderrBytes: Int64, storedBytes: Int64, droppedBytes: Int64,
        outputPruned: Bool, configDigest: String, reason: String?, usage: ResourceUsage? = nil,
        edit: EditSummary? = nil, terminal: TerminalWindow? = nil, stdinBytes: Int64? = nil,
        argvTruncated: Bool = false, envKeysTruncated: Bool = false, runId: String? = nil
    ) {
        self.runId = runId
        self.argvTruncated = argvTruncated
        self.envKeysTruncated = envKeysTruncated
        self.stdinBytes = stdinBytes
        self.usage = usage
        self.executionId = executionId
        self.status = status
        self.callerUid = callerUid
        self.callerUser = callerUser
        self.callerPid = callerPid
        self.executor = executor
        self.runAs = runAs
        self.argv = argv
        self.workingDirectory = workingDirectory
        self.envKeys = envKeys
        self.pid = pid
        self.exitCode = exitCode
        self.signal = signal
        self.createdAtMs = createdAtMs
        self.startedAtMs = startedAtMs
        self.finishedAtMs = finishedAtMs
        self.durationUsec = durationUsec
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.storedBytes = storedBytes
        self.droppedBytes = droppedBytes
        self.outputPruned = outputPruned
        self.configDigest = configDigest
        self.reason = reason
        self.edit = edit
        self.terminal = terminal
    }

    enum CodingKeys: String, CodingKey {
        case status, executor, argv, pid, signal, reason, usage, edit, terminal, hooks
        case runId = "run_id"
        case executionId = "execution_id"
        case callerUid = "caller_uid"
        case callerUser = "caller_user"
        case callerPid = "caller_pid"
        case runAs = "run_as"
        case workingDirectory = "working_directory"
        case envKeys = "env_keys"
        case argvTruncated = "argv_truncated"
        case envKeysTruncated = "env_keys_truncated"
        case exitCode = "exit_code"
        case createdAtMs = "created_at_ms"
        case startedAtMs = "started_at_ms"
        case finishedAtMs = "finished_at_ms"
        case durationUsec = "duration_usec"
        case stdoutBytes = "stdout_bytes"
        case stderrBytes = "stderr_bytes"
        case stdinBytes = "stdin_bytes"
        case storedBytes = "stored_bytes"
        case droppedBytes = "dropped_bytes"
        case outputPruned = "output_pruned"
        case configDigest = "config_digest"
    }

    /// Writes every member, absent ones as null, so the JSON shape is the same for every execution.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(executionId, forKey: .executionId)
        try c.encode(status, forKey: .status)
        try c.encode(callerUid, forKey: .callerUid)
        try c.encode(callerUser, forKey: .callerUser)
        try c.encode(callerPid, forKey: .callerPid)
        try c.encode(executor, forKey: .executor)
        try c.encode(runAs, forKey: .runAs)
        try c.encode(argv, forKey: .argv)
        try c.encode(argvTruncated, forKey: .argvTruncated)
        try c.encode(workingDirectory, forKey: .workingDirectory)
        try c.encode(envKeys, forKey: .envKeys)
        try c.encode(envKeysTruncated, forKey: .envKeysTruncated)
        try c.encode(pid, forKey: .pid)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(signal, forKey: .signal)
        try c.encode(createdAtMs, forKey: .createdAtMs)
        try c.encode(startedAtMs, forKey: .startedAtMs)
        try c.encode(finishedAtMs, forKey: .finishedAtMs)
        try c.encode(durationUsec, forKey: .durationUsec)
        try c.encode(stdoutBytes, forKey: .stdoutBytes)
        try c.encode(stderrBytes, forKey: .stderrBytes)
        try c.encode(stdinBytes, forKey: .stdinBytes)
        try c.encode(storedBytes, forKey: .storedBytes)
        try c.encode(droppedBytes, forKey: .droppedBytes)
        try c.encode(outputPruned, forKey: .outputPruned)
        try c.encode(configDigest, forKey: .configDigest)
        try c.encode(reason, forKey: .reason)
        try c.encode(usage, forKey: .usage)
        try c.encode(edit, forKey: .edit)
        try c.encode(terminal, forKey: .terminal)
        try c.encodeIfPresent(runId, forKey: .runId)
        try c.encodeIfPresent(hooks, forKey: .hooks)
    }

    /// Reads every member; unknown ones are ignored, and `argv_truncated` and `env_keys_truncated` are false when
    /// absent (a daemon from before they existed sends whole argv and env keys).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        executionId = try c.decode(String.self, forKey: .executionId)
        status = try c.decode(ExecutionStatus.self, forKey: .status)
        callerUid = try c.decode(UInt32.self, forKey: .callerUid)
        callerUser = try c.decode(String.self, forKey: .callerUser)
        callerPid = try c.decode(Int32.self, forKey: .callerPid)
        executor = try c.decode(String.self, forKey: .executor)
        runAs = try c.decode(String.self, forKey: .runAs)
        argv = try c.decode([String].self, forKey: .argv)
        argvTruncated = try c.decodeIfPresent(Bool.self, forKey: .argvTruncated) ?? false
        workingDirectory = try c.decode(String.self, forKey: .workingDirectory)
        envKeys = try c.decode([String].self, forKey: .envKeys)
        envKeysTruncated = try c.decodeIfPresent(Bool.self, forKey: .envKeysTruncated) ?? false
        pid = try c.decodeIfPresent(Int32.self, forKey: .pid)
        exitCode = try c.decodeIfPresent(Int32.self, forKey: .exitCode)
        signal = try c.decodeIfPresent(Int32.self, forKey: .signal)
        createdAtMs = try c.decode(Int64.self, forKey: .createdAtMs)
        startedAtMs = try c.decodeIfPresent(Int64.self, forKey: .startedAtMs)
        finishedAtMs = try c.decodeIfPresent(Int64.self, forKey: .finishedAtMs)
        durationUsec = try c.decodeIfPresent(Int64.self, forKey: .durationUsec)
        stdoutBytes = try c.decode(Int64.self, forKey: .stdoutBytes)
        stderrBytes = try c.decode(Int64.self, forKey: .stderrBytes)
        stdinBytes = try c.decodeIfPresent(Int64.self, forKey: .stdinBytes)
        storedBytes = try c.decode(Int64.self, forKey: .storedBytes)
        droppedBytes = try c.decode(Int64.self, forKey: .droppedBytes)
        outputPruned = try c.decode(Bool.self, forKey: .outputPruned)
        configDigest = try c.decode(String.self, forKey: .configDigest)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        usage = try c.decodeIfPresent(ResourceUsage.self, forKey: .usage)
        edit = try c.decodeIfPresent(EditSummary.self, forKey: .edit)
        terminal = try c.decodeIfPresent(TerminalWindow.self, forKey: .terminal)
        runId = try c.decodeIfPresent(String.self, forKey: .runId)
        hooks = try c.decodeIfPresent([HookRunInfo].self, forKey: .hooks)
    }
}
