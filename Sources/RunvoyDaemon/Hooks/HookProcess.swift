import CRunvoyPosix
import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit

/// One run of a hook's command: spawned through the daemon's spawner as the hook's user (its own session and
/// process group, cwd `/`, a fixed environment), fed its JSON on stdin then end of file, its stdout and stderr
/// kept together up to `outputCap` bytes (the rest counted), killed with its whole process group at the timeout,
/// and what is left of its group killed when its main process exits.
///
/// All of it happens on a thread of its own (hooks are rare; a blocked `poll` must never hold a cooperative
/// thread): `run` only suspends until that thread is done.
struct HookProcess: Sendable {
    /// What a hook's stdout and stderr keep together.
    static let outputCap = 64 << 10
    /// After the main process exits, how long its output may still be read (a process that left its group can
    /// hold the pipe open; it is not waited for beyond this, nor beyond the timeout).
    static let drainAfterExit: Duration = .seconds(2)
    static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// How one run ended.
    struct Ran: Sendable, Equatable {
        /// nil when it could not be started (`spawnError` says why).
        var status: ExitStatus?
        var timedOut = false
        var output: [UInt8] = []
        /// Output bytes beyond the cap, counted and dropped.
        var dropped = 0
        var durationUsec: Int64 = 0
        var spawnError: String?
        /// The process ended but its exit status could not be read (`waitid` failed): an error, never a signal.
        var statusLost = false
        var pid: pid_t = 0
    }

    let spawner: any ProcessSpawner
    /// Where the hook's process is held from the orphan reaper until its final wait (subreaper containment); nil
    /// when nothing reaps the daemon's children behind its back.
    var children: (any ChildHolding)?
    /// Where running hooks are listed for shutdown to kill; nil lists them nowhere.
    var running: RunningHooks?

    /// The environment a hook gets, and nothing else.
    static func environment(_ hook: HookConfig, executionID: String?) -> [String: String] {
        [
            "PATH": path, "LANG": "C.UTF-8", "RUNVOY_HOOK_EVENT": hook.event.rawValue, "RUNVOY_HOOK_NAME": hook.name,
            "RUNVOY_EXECUTION_ID": executionID ?? "",
        ]
    }

    /// Runs `hook` with `input` on its stdin.
    func run(_ hook: HookConfig, input: [UInt8], executionID: String?) async -> Ran {
        let began = ContinuousClock.now
        let identity: SpawnRequest.Identity?
        do throws(RunvoyError) {
            identity = try Self.identity(hook)
        } catch {
            return Ran(spawnError: error.message)
        }
        var spawning = SpawnRequest(
            path: hook.command[0], argv: hook.command,
            environment: Self.environment(hook, executionID: executionID), workingDirectory: "/",
            identity: identity, stdinPipe: true)
        // A hook outlives no daemon: without systemd's cgroup (containment subreaper) nothing else would end it.
        spawning.parentDeathSignal = SIGKILL
        let request = spawning
        let spawner = self.spawner
        let children = self.children
        let running = self.running
        let timeout = hook.timeout
        var ran = await withCheckedContinuation { (continuation: CheckedContinuation<Ran, Never>) in
            let thread = Thread {
                continuation.resume(
                    returning: Self.supervise(request, (spawner, children, running), input: input, timeout: timeout))
            }
            thread.name = "runvoyd-hook"
            thread.start()
        }
        ran.durationUsec = ExecPlan.micros(.now - began)
        return ran
    }

    /// The hook's user and group, as the spawner takes them; nil keeps the daemon's own (an unprivileged daemon
    /// runs hooks only as itself).
    static func identity(_ hook: HookConfig) throws(RunvoyError) -> SpawnRequest.Identity? {
        guard let user = UserDatabase.user(named: hook.user) else {
            throw RunvoyError(.spawnFailed, "hook '\(hook.name)' runs as user '\(hook.user)', who does not exist")
        }
        var gid = user.gid
        if let name = hook.group {
            guard let found = UserDatabase.groupID(named: name) else {
                throw RunvoyError(.spawnFailed, "hook '\(hook.name)' runs as group '\(name)', which does not exist")
            }
            gid = found
        }
        guard geteuid() == 0 else {
            guard user.uid == geteuid() else {
                throw RunvoyError(.spawnFailed, "runvoyd is not running as root and cannot run hooks as '\(user.name)'")
            }
            return nil
        }
        var groups = UserDatabase.groupIDs(user: user.name, primary: gid)
        if !groups.contains(gid) { groups.insert(gid, at: 0) }
        return SpawnRequest.Identity(uid: user.uid, gid: gid, groups: groups)
    }

    /// On the hook's thread: spawns it (held in `children` from before the spawn to after its final wait, so the
    /// orphan reaper never takes its status) and sees it through to its end.
    private static func supervise(
        _ request: SpawnRequest, _ with: (any ProcessSpawner, (any ChildHolding)?, RunningHooks?), input: [UInt8],
        timeout: Duration
    ) -> Ran {
        ignoreBrokenPipes
        let (spawner, children, running) = with
        let process: SpawnedProcess
        children?.spawning()
        do throws(SpawnError) {
            process = try spawner.spawn(request)
        } catch {
            children?.spawned(nil)
            return Ran(spawnError: error.wireError.message)
        }
        children?.spawned(process.pid)
        defer { children?.released(process.pid) }
        running?.add(process.pidfd)
        var pipes = HookPipes(process, input: input)
        defer { pipes.closeAll() }
        var ran = Ran(pid: process.pid)
        let deadline = ContinuousClock.now + timeout
        ran.status = pipes.pump(until: deadline, pidfd: process.pidfd)
        ran.statusLost = pipes.statusLost
        if ran.status == nil && !ran.statusLost {
            ran.timedOut = true
            _ = runvoy_pidfd_send_signal(process.pidfd, SIGKILL)
        }
        finish(process, &ran, running)
        pipes.drain(until: min(deadline, .now + drainAfterExit))
        ran.output = pipes.output
        ran.dropped = pipes.dropped
        return ran
    }

    /// Kills what is left of the hook's process group and reaps its main process. The group is signalled only
    /// while the main process is known to be unreaped (a zombie the daemon holds, or still running: its pgid
    /// cannot be reused until it is reaped); when its status was lost it may have been reaped already, so the
    /// group is not signalled (its id could name another's).
    private static func finish(_ process: SpawnedProcess, _ ran: inout Ran, _ running: RunningHooks?) {
        if !ran.statusLost { kill(-process.pid, SIGKILL) }
        var exited: Int32 = 0
        var status: Int32 = 0
        _ = runvoy_pidfd_wait(process.pidfd, &exited, &status)
        if ran.status == nil && ran.timedOut { ran.status = .signaled(SIGKILL) }
        running?.remove(process.pidfd)
        close(process.pidfd)
    }

    /// The daemon ignores SIGPIPE (swift-nio sets it); a hook's stdin is written with it ignored in tests too.
    private static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
}

/// The daemon's ends of one hook's pipes, read and written without blocking from the hook's thread.
private struct HookPipes {
    var stdin: Int32?
    var outputs: [Int32]
    var input: [UInt8]
    var written = 0
    var output: [UInt8] = []
    var dropped = 0
    /// The process ended but `waitid` could not read its status.
    var statusLost = false

    init(_ process: SpawnedProcess, input: [UInt8]) {
        stdin = process.stdinFD
        outputs = [process.stdoutFD] + (process.stderrFD.map { [$0] } ?? [])
        self.input = input
        for fd in outputs + (stdin.map { [$0] } ?? []) {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        if input.isEmpty { closeInput() }
    }

    /// Feeds stdin and reads output until the process exits (its status) or the deadline passes (nil).
    mutating func pump(until deadline: ContinuousClock.Instant, pidfd: Int32) -> ExitStatus? {
        while true {
            let left = deadline - .now
            guard left > .zero else { return nil }
            var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            fds += outputs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if let stdin { fds.append(pollfd(fd: stdin, events: Int16(POLLOUT), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), Self.milliseconds(left))
            if ready < 0 && errno != EINTR { return nil }
            for entry in fds.dropFirst() where entry.revents != 0 {
                if entry.fd == stdin { writeInput() } else { read(entry.fd) }
            }
            if fds[0].revents != 0 {
                var exited: Int32 = 0
                var status: Int32 = 0
                guard runvoy_pidfd_wait_keeping(pidfd, &exited, &status) == 0 else {
                    statusLost = true
                    return nil
                }
                return exited != 0 ? .exited(status) : .signaled(status)
            }
        }
    }

    /// Reads what is left of the output once the process group is gone, until end of file or the deadline.
    mutating func drain(until deadline: ContinuousClock.Instant) {
        closeInput()
        while !outputs.isEmpty {
            let left = deadline - .now
            guard left > .zero else { return }
            var fds = outputs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&fds, nfds_t(fds.count), Self.milliseconds(left)) < 0 && errno != EINTR { return }
            for entry in fds where entry.revents != 0 { read(entry.fd) }
        }
    }

    private mutating func writeInput() {
        guard let fd = stdin else { return }
        let count = input[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            written += count
            if written == input.count { closeInput() }
        } else if count < 0 && errno != EAGAIN && errno != EINTR {
            closeInput()  // EPIPE: the hook does not read its input, which is its business.
        }
    }

    private mutating func read(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            let room = max(0, HookProcess.outputCap - output.count)
            output += buffer[0..<min(count, room)]
            dropped += max(0, count - room)
        } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
            close(fd)
            outputs.removeAll { $0 == fd }
        }
    }

    mutating func closeInput() {
        if let fd = stdin { close(fd) }
        stdin = nil
    }

    mutating func closeAll() {
        closeInput()
        for fd in outputs { close(fd) }
        outputs = []
    }

    private static func milliseconds(_ duration: Duration) -> Int32 {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000 + 1
        return Int32(clamping: ms)
    }
}
