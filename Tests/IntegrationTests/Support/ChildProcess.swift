import Glibc

/// A child process started with posix_spawn and reaped with waitpid by this object alone.
///
/// The tests do not use Foundation's Process: its exit monitoring stalled when many children were started from
/// several test threads at once, leaving zombies it never reaped.
final class ChildProcess {
    let pid: pid_t
    private var exitStatus: Int32?

    /// Starts `argv` with stdin from `stdinPath` (default /dev/null) and stdout/stderr to the given files
    /// (default /dev/null). Every signal starts with its default disposition and unblocked.
    init(
        _ argv: [String], environment: [String: String]? = nil, stdinPath: String? = nil, stdoutPath: String? = nil,
        stderrPath: String? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env: [String] = []
        if var environment {
            // Under scripts/coverage every process writes its profile where LLVM_PROFILE_FILE says: a child given
            // an environment of its own would otherwise write default.profraw in the working directory, unread.
            if environment["LLVM_PROFILE_FILE"] == nil, let profile = getenv("LLVM_PROFILE_FILE") {
                environment["LLVM_PROFILE_FILE"] = String(cString: profile)
            }
            env = environment.map { "\($0.key)=\($0.value)" }
        } else {
            var pointer = environ
            while let entry = pointer.pointee {
                env.append(String(cString: entry))
                pointer += 1
            }
        }
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, argv[0], &actions, &attributes, cArgv, cEnv)
        guard rc == 0 else { throw HarnessError("posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }
        pid = child
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            _ = wait()
        }
    }

    /// The exit status (128+N for death by signal N), once the process has ended.
    var status: Int32? {
        if exitStatus == nil { reap(options: WNOHANG) }
        return exitStatus
    }

    var isRunning: Bool { status == nil }

    /// Waits up to `seconds`; returns the exit status, or nil if it is still running.
    @discardableResult
    func wait(seconds: Double? = nil) -> Int32? {
        guard let seconds else {
            reap(options: 0)
            return exitStatus
        }
        var waited = 0.0
        while exitStatus == nil {
            reap(options: WNOHANG)
            if exitStatus != nil || waited >= seconds { break }
            usleep(2000)
            waited += 0.002
        }
        return exitStatus
    }

    func signal(_ number: Int32) {
        if exitStatus == nil { kill(pid, number) }
    }

    private func reap(options: Int32) {
        var raw: Int32 = 0
        var rc: pid_t
        repeat {
            rc = waitpid(pid, &raw, options)
        } while rc < 0 && errno == EINTR
        guard rc == pid else { return }
        let signal = raw & 0x7F
        exitStatus = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
    }
}
