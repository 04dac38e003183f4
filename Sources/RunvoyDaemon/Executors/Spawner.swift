import CRunvoyPosix
import Glibc
import RunvoyConfig
import RunvoyKit

/// What to start: a resolved program, its argv and environment, and the identity to run it as.
struct SpawnRequest: Sendable {
    struct Identity: Sendable, Equatable {
        var uid: uid_t
        var gid: gid_t
        var groups: [gid_t]
    }

    var path: String
    var argv: [String]
    var environment: [String: String]
    var workingDirectory: String
    /// nil keeps the daemon's identity (a daemon that is not root can only run commands as itself).
    var identity: Identity?
    /// Whether the command reads a pipe the daemon feeds; otherwise /dev/null. Not read with a terminal.
    var stdinPipe: Bool
    /// A pseudo-terminal of this size as the command's controlling terminal and stdio, instead of pipes.
    var terminal: TerminalSize? = nil
    /// What the child does to enter its execution's scope (cgroup, audit session).
    var hooks = SpawnHooks()
    /// Resource limits set in the child before exec.
    var resourceLimits = ChildResourceLimits()
    /// A signal the child gets if the thread that spawned it ends first (`PR_SET_PDEATHSIG`), or 0: for a hook,
    /// whose supervising thread lives until the hook is reaped, so the hook ends with a daemon that died.
    var parentDeathSignal: Int32 = 0
}

/// A terminal's window, in character cells.
struct TerminalSize: Sendable, Equatable {
    var rows: UInt16
    var cols: UInt16

    /// A size within `TerminalParams.sizes`, or nil.
    init?(rows: Int, cols: Int) {
        guard TerminalParams.sizes.contains(rows), TerminalParams.sizes.contains(cols) else { return nil }
        self.rows = UInt16(rows)
        self.cols = UInt16(cols)
    }
}

/// A started command: its pid, a pidfd for it, and the daemon's ends of its pipes. Whoever receives it owns all of
/// them (`ExecLaunch` until the execution exists, then the execution).
struct SpawnedProcess: Sendable {
    var pid: pid_t
    var pidfd: Int32
    var stdinFD: Int32?
    /// With a terminal: its master, which carries the command's one output stream (`stdinFD` is a second
    /// descriptor of it, for input).
    var stdoutFD: Int32
    /// nil with a terminal.
    var stderrFD: Int32?
    /// With a terminal: a third descriptor of its master, for window size changes.
    var terminalFD: Int32? = nil
}

/// Starts commands. The daemon uses `PosixSpawner`; tests put their own in its place to start executions in
/// process, or to fail at a chosen stage.
protocol ProcessSpawner: Sendable {
    /// Starts `request`'s command, or throws without leaving anything open or running.
    func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess
}

/// Starts commands with vfork semantics through a C child path that only makes system calls, so starting a
/// command costs no copy of the daemon's page tables, and returns only once the command has exec'd or failed.
struct PosixSpawner: ProcessSpawner {
    /// Pipes for output are grown to this size: fewer wake-ups, and the throughput the protocol needs.
    static let pipeSize: Int32 = 1 << 20

    func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        let ends: PipeEnds
        if let size = request.terminal {
            ends = try PipeEnds(terminal: size, owner: request.identity?.uid ?? geteuid())
        } else {
            ends = try PipeEnds(stdinPipe: request.stdinPipe)
        }
        let result = Self.start(request, ends)
        // The child has exec'd (or failed); the parent keeps only its own ends.
        ends.closeChildEnds()
        guard result.pid > 0 else {
            ends.closeParentEnds()
            throw SpawnError(.init(spawnStage: result.stage), errno: result.error)
        }
        let pidfd: Int32
        do throws(SystemError) {
            pidfd = try retryingOnInterrupt("pidfd_open") { runvoy_pidfd_open(result.pid) }
        } catch {
            kill(result.pid, SIGKILL)
            var ignored: Int32 = 0
            _ = try? retryingOnInterrupt("waitpid") { waitpid(result.pid, &ignored, 0) }
            ends.closeParentEnds()
            throw SpawnError(.pidfd, errno: error.errno)
        }
        return SpawnedProcess(
            pid: result.pid, pidfd: pidfd, stdinFD: ends.stdin.write >= 0 ? ends.stdin.write : nil,
            stdoutFD: ends.stdout.read, stderrFD: ends.stderr.read >= 0 ? ends.stderr.read : nil,
            terminalFD: ends.control >= 0 ? ends.control : nil)
    }

    private static func start(_ request: SpawnRequest, _ ends: PipeEnds) -> runvoy_spawn_result {
        let argv = CStringArray(request.argv)
        let envp = CStringArray(request.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        let groups = request.identity?.groups ?? []
        let limits = Self.limits(request.resourceLimits)
        let loginUID = request.hooks.loginUID.map { strdup(String($0)) } ?? nil
        defer { free(loginUID) }
        return request.path.withCString { path in
            request.workingDirectory.withCString { cwd in
                groups.withUnsafeBufferPointer { groupsBuffer in
                    limits.withUnsafeBufferPointer { limitsBuffer in
                        var spec = runvoy_spawn_request(
                            path: path, argv: argv.pointers, envp: envp.pointers, cwd: cwd,
                            change_identity: request.identity == nil ? 0 : 1,
                            uid: request.identity?.uid ?? 0, gid: request.identity?.gid ?? 0,
                            groups: groupsBuffer.baseAddress, ngroups: groupsBuffer.count,
                            stdin_fd: ends.stdin.read, stdout_fd: ends.stdout.write, stderr_fd: ends.stderr.write,
                            tty_fd: ends.terminalSlave, cgroup_procs_fd: request.hooks.cgroupProcsFD,
                            cgroup_dir_fd: request.hooks.cgroupDirectoryFD,
                            loginuid: UnsafePointer(loginUID), rlimits: limitsBuffer.baseAddress,
                            nrlimits: limitsBuffer.count, parent_death_signal: request.parentDeathSignal,
                            parent_pid: getpid())
                        return runvoy_spawn(&spec)
                    }
                }
            }
        }
    }

    /// The resource limits the child sets, as the C side takes them.
    static func limits(_ limits: ChildResourceLimits) -> [runvoy_rlimit_setting] {
        var settings: [runvoy_rlimit_setting] = []
        if let value = limits.openFiles {
            settings.append(runvoy_rlimit_setting(resource: RUNVOY_RLIMIT_NOFILE, value: value))
        }
        if let value = limits.processes {
            settings.append(runvoy_rlimit_setting(resource: RUNVOY_RLIMIT_NPROC, value: value))
        }
        if let value = limits.coreBytes {
            settings.append(runvoy_rlimit_setting(resource: RUNVOY_RLIMIT_CORE, value: value))
        }
        return settings
    }
}

/// The pipes of one spawn: the child's ends go to the command, the parent's to the daemon. Creating them closes
/// what was already made when one fails. With a terminal, the child's three ends are its slave and the parent's
/// are descriptors of its master (its slave is the child's end of all three; `stderr.read` is -1).
struct PipeEnds {
    var stdout: (read: Int32, write: Int32)
    var stderr: (read: Int32, write: Int32)
    /// A pipe, or /dev/null as `read` with `write` -1.
    var stdin: (read: Int32, write: Int32)
    /// The terminal's slave, or -1.
    var terminalSlave: Int32 = -1
    /// A descriptor of the terminal's master for window size changes, or -1.
    var control: Int32 = -1

    /// A pseudo-terminal whose slave `owner` owns: the command's stdio and controlling terminal.
    init(terminal size: TerminalSize, owner: uid_t) throws(SpawnError) {
        var master: Int32 = -1
        var slave: Int32 = -1
        guard runvoy_open_pty(&master, &slave, owner, size.rows, size.cols) == 0 else {
            throw SpawnError(.terminal, errno: errno)
        }
        let input = fcntl(master, F_DUPFD_CLOEXEC, 3)
        let control = input < 0 ? -1 : fcntl(master, F_DUPFD_CLOEXEC, 3)
        guard input >= 0, control >= 0 else {
            let saved = errno
            for fd in [master, slave, input] where fd >= 0 { close(fd) }
            throw SpawnError(.terminal, errno: saved)
        }
        stdout = (master, slave)
        stderr = (-1, slave)
        stdin = (slave, input)
        terminalSlave = slave
        self.control = control
    }

    init(stdinPipe: Bool) throws(SpawnError) {
        var opened: [Int32] = []
        do throws(SpawnError) {
            stdout = try Self.makePipe(&opened)
            stderr = try Self.makePipe(&opened)
            if stdinPipe {
                stdin = try Self.makePipe(&opened)
            } else {
                do throws(SystemError) {
                    stdin = (try retryingOnInterrupt("open /dev/null") { open("/dev/null", O_RDONLY | O_CLOEXEC) }, -1)
                } catch {
                    throw SpawnError(.devNull, errno: error.errno)
                }
            }
        } catch {
            for fd in opened { close(fd) }
            throw error
        }
        _ = runvoy_set_pipe_size(stdout.write, PosixSpawner.pipeSize)
        _ = runvoy_set_pipe_size(stderr.write, PosixSpawner.pipeSize)
    }

    private static func makePipe(_ opened: inout [Int32]) throws(SpawnError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        do throws(SystemError) {
            try retryingOnInterrupt("pipe2") { runvoy_pipe_cloexec(&fds, 0) }
        } catch {
            throw SpawnError(.pipe, errno: error.errno)
        }
        opened.append(contentsOf: fds)
        return (fds[0], fds[1])
    }

    func closeChildEnds() {
        // The terminal's slave is the daemon's no longer: only the command (and what it starts) holds it.
        for fd in Set([stdin.read, stdout.write, stderr.write]) where fd >= 0 { close(fd) }
    }

    func closeParentEnds() {
        for fd in [stdout.read, stderr.read, stdin.write, control] where fd >= 0 { close(fd) }
    }
}

/// A NULL-terminated array of C strings that lives as long as this value.
private final class CStringArray {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointers = .allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() { pointers[index] = strdup(string) }
        pointers[strings.count] = nil
    }

    deinit {
        for index in 0..<count { free(pointers[index]) }
        pointers.deallocate()
    }
}
