import CRunvoyPosix
import Glibc
import RunvoyKit

/// What to start: a resolved program, its argv and environment, and the identity to run it as.
struct SpawnRequest: Sendable {
    struct Identity: Sendable {
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
    /// Whether the command reads a pipe the daemon feeds; otherwise /dev/null.
    var stdinPipe: Bool
}

/// A started command: its pid, a pidfd for it, and the daemon's ends of its pipes.
struct SpawnedProcess: Sendable {
    var pid: pid_t
    var pidfd: Int32
    var stdinFD: Int32?
    var stdoutFD: Int32
    var stderrFD: Int32
}

/// Starts commands with vfork semantics through a C child path that only makes system calls, so starting a
/// command costs no copy of the daemon's page tables, and returns only once the command has exec'd or failed.
enum Spawner {
    /// Pipes for output are grown to this size: fewer wake-ups, and the throughput the protocol needs.
    static let pipeSize: Int32 = 1 << 20

    static func spawn(_ request: SpawnRequest) throws(RunvoyError) -> SpawnedProcess {
        var opened: [Int32] = []
        func closeAll() { for fd in opened { close(fd) } }
        func makePipe() throws(RunvoyError) -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            guard runvoy_pipe_cloexec(&fds, 0) == 0 else {
                let message = String(cString: strerror(errno))
                closeAll()
                throw RunvoyError(.spawnFailed, "cannot create a pipe: \(message)", reason: "resources")
            }
            opened.append(contentsOf: fds)
            return (fds[0], fds[1])
        }
        let stdout = try makePipe()
        let stderr = try makePipe()
        var stdin: (read: Int32, write: Int32)
        if request.stdinPipe {
            stdin = try makePipe()
        } else {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                closeAll()
                throw RunvoyError(.spawnFailed, "cannot open /dev/null: \(String(cString: strerror(errno)))")
            }
            opened.append(fd)
            stdin = (fd, -1)
        }
        _ = runvoy_set_pipe_size(stdout.write, pipeSize)
        _ = runvoy_set_pipe_size(stderr.write, pipeSize)

        let argv = CStringArray(request.argv)
        let envp = CStringArray(request.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        let groups = request.identity?.groups ?? []
        let result: runvoy_spawn_result = request.path.withCString { path in
            request.workingDirectory.withCString { cwd in
                groups.withUnsafeBufferPointer { groupsBuffer in
                    var spec = runvoy_spawn_request(
                        path: path, argv: argv.pointers, envp: envp.pointers, cwd: cwd,
                        change_identity: request.identity == nil ? 0 : 1,
                        uid: request.identity?.uid ?? 0, gid: request.identity?.gid ?? 0,
                        groups: groupsBuffer.baseAddress, ngroups: groupsBuffer.count,
                        stdin_fd: stdin.read, stdout_fd: stdout.write, stderr_fd: stderr.write)
                    return runvoy_spawn(&spec)
                }
            }
        }
        // The child has exec'd (or failed); the parent keeps only its own ends.
        close(stdin.read)
        close(stdout.write)
        close(stderr.write)
        guard result.pid > 0 else {
            for fd in [stdout.read, stderr.read] { close(fd) }
            if stdin.write >= 0 { close(stdin.write) }
            throw describe(stage: result.stage, errno: result.error)
        }
        let pidfd = runvoy_pidfd_open(result.pid)
        if pidfd < 0 {
            let message = String(cString: strerror(errno))
            kill(result.pid, SIGKILL)
            var ignored: Int32 = 0
            waitpid(result.pid, &ignored, 0)
            for fd in [stdout.read, stderr.read] { close(fd) }
            if stdin.write >= 0 { close(stdin.write) }
            throw RunvoyError(.spawnFailed, "pidfd_open: \(message)", reason: "resources")
        }
        return SpawnedProcess(
            pid: result.pid, pidfd: pidfd, stdinFD: stdin.write >= 0 ? stdin.write : nil, stdoutFD: stdout.read,
            stderrFD: stderr.read)
    }

    static func describe(stage: Int32, errno code: Int32) -> RunvoyError {
        let text = String(cString: strerror(code))
        switch UInt32(stage) {
        case RUNVOY_STAGE_EXEC.rawValue:
            switch code {
            case ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG:
                return RunvoyError(.spawnFailed, "cannot execute the command: \(text)", reason: "not_found")
            case E2BIG:
                return RunvoyError(
                    .spawnFailed, "the arguments and environment are too long for the kernel: \(text)",
                    reason: "arguments_too_long")
            case ENOMEM, EAGAIN, EMFILE, ENFILE:
                return RunvoyError(.spawnFailed, "cannot execute the command: \(text)", reason: "resources")
            default:
                // EACCES, ENOEXEC, EISDIR, ETXTBSY, EPERM, ELIBBAD: the file is there but cannot be executed.
                return RunvoyError(.spawnFailed, "cannot execute the command: \(text)", reason: "not_executable")
            }
        case RUNVOY_STAGE_CHDIR.rawValue:
            return RunvoyError(.spawnFailed, "cannot enter the working directory: \(text)", reason: "working_directory")
        case RUNVOY_STAGE_SETGROUPS.rawValue, RUNVOY_STAGE_SETGID.rawValue, RUNVOY_STAGE_SETUID.rawValue:
            return RunvoyError(.spawnFailed, "cannot switch to the run-as identity: \(text)", reason: "identity")
        case RUNVOY_STAGE_FORK.rawValue:
            return RunvoyError(.spawnFailed, "cannot fork: \(text)", reason: "resources")
        default:
            return RunvoyError(.spawnFailed, "cannot start the command (stage \(stage)): \(text)", reason: "exec")
        }
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
