import CRunvoyPosix
import Glibc
import RunvoyKit

/// Why a command could not be started: the stage that failed and its errno. `wireError` turns it into what the
/// client is told, at the edge of the exec path (`ExecLaunch`), once.
struct SpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, as the wire error's `reason` names it.
    enum Code: String, Sendable, Equatable {
        /// No such file (or a directory on the way is missing, or the name is too long).
        case notFound = "not_found"
        /// The file is there but cannot be executed.
        case notExecutable = "not_executable"
        /// The arguments and environment are more than the kernel takes.
        case argumentsTooLong = "arguments_too_long"
        /// Out of memory, processes or descriptors.
        case resources
        /// The executor's working directory cannot be entered.
        case workingDirectory = "working_directory"
        /// The run-as identity cannot be taken.
        case identity
        /// Any other step of the child's way to `exec`.
        case exec
        /// The executor is sandboxed (`sandbox:`) and transient units cannot be started here: refused.
        case sandboxUnavailable = "sandbox_unavailable"
        /// The execution's transient unit could not be started.
        case unit
    }

    /// Where it failed: in the daemon around the child, or in the child on its way to `exec` (`RUNVOY_STAGE_*`).
    enum Stage: Sendable, Equatable {
        case pipe
        case devNull
        case fork
        case pidfd
        /// The pseudo-terminal could not be made.
        case terminal
        /// The execution's cgroup could not be made, limited, or entered.
        case cgroup
        /// A resource limit (`rlimits`) could not be set in the child.
        case resourceLimit
        case setgroups
        case setgid
        case setuid
        case chdir
        case exec
        /// Another step of the child (setsid, dup2), by its `RUNVOY_STAGE_*` number.
        case child(Int32)
        /// A sandboxed executor, and no service manager to start its unit: why.
        case sandboxUnavailable(String)
        /// systemd did not start the execution's unit: what it said.
        case unit(String)

        /// The stage `runvoy_spawn` reports.
        init(spawnStage stage: Int32) {
            switch UInt32(stage) {
            case RUNVOY_STAGE_FORK.rawValue: self = .fork
            case RUNVOY_STAGE_SETGROUPS.rawValue: self = .setgroups
            case RUNVOY_STAGE_SETGID.rawValue: self = .setgid
            case RUNVOY_STAGE_SETUID.rawValue: self = .setuid
            case RUNVOY_STAGE_CHDIR.rawValue: self = .chdir
            case RUNVOY_STAGE_EXEC.rawValue: self = .exec
            case RUNVOY_STAGE_CGROUP.rawValue: self = .cgroup
            case RUNVOY_STAGE_RLIMIT.rawValue: self = .resourceLimit
            default: self = .child(stage)
            }
        }
    }

    var stage: Stage
    var errno: Int32

    init(_ stage: Stage, errno: Int32) {
        self.stage = stage
        self.errno = errno
    }

    var code: Code {
        switch stage {
        case .pipe, .devNull, .fork, .pidfd, .terminal, .cgroup, .resourceLimit: return .resources
        case .setgroups, .setgid, .setuid: return .identity
        case .chdir: return .workingDirectory
        case .child: return .exec
        case .sandboxUnavailable: return .sandboxUnavailable
        case .unit: return .unit
        case .exec:
            switch errno {
            case ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG: return .notFound
            case E2BIG: return .argumentsTooLong
            case ENOMEM, EAGAIN, EMFILE, ENFILE: return .resources
            // EACCES, ENOEXEC, EISDIR, ETXTBSY, EPERM, ELIBBAD: the file is there but cannot be executed.
            default: return .notExecutable
            }
        }
    }

    var description: String { wireError.message }

    /// The error the client gets: `spawn_failed` with the message and `reason` runvoyd has always sent.
    var wireError: RunvoyError {
        let text = SystemError.text(errno)
        let message: String
        switch stage {
        case .pipe: message = "cannot create a pipe: \(text)"
        // The one failure that has never carried a reason.
        case .devNull: return RunvoyError(.spawnFailed, "cannot open /dev/null: \(text)")
        case .pidfd: message = "pidfd_open: \(text)"
        case .terminal: message = "cannot make a terminal: \(text)"
        case .fork: message = "cannot fork: \(text)"
        case .cgroup: message = "cannot make or enter the execution's cgroup: \(text)"
        case .resourceLimit: message = "cannot set the executor's resource limits: \(text)"
        case .setgroups, .setgid, .setuid: message = "cannot switch to the run-as identity: \(text)"
        case .chdir: message = "cannot enter the working directory: \(text)"
        case .exec:
            message =
                code == .argumentsTooLong
                ? "the arguments and environment are too long for the kernel: \(text)"
                : "cannot execute the command: \(text)"
        case .child(let number): message = "cannot start the command (stage \(number)): \(text)"
        case .sandboxUnavailable(let why):
            message = "the executor is sandboxed, and its transient unit cannot be started: \(why)"
        case .unit(let why): message = "systemd did not start the execution's unit: \(why)"
        }
        return RunvoyError(.spawnFailed, message, reason: code.rawValue)
    }
}
