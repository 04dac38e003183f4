import CRunvoyPosix
import CSystemd
import Glibc
import RunvoyConfig
import RunvoyKit

/// Sandboxed executors (`sandbox:`): each execution is a transient service unit, `runvoy-<id>.service` in
/// `runvoy.slice`, started through sd-bus on the connection the daemon keeps (`SystemdBus`), with the executor's
/// systemd execution properties and the same pipe ends the normal spawner would give the command. The unit's
/// cgroup is the execution's scope; its end and exit status come from systemd.
///
/// Only where systemd is PID 1, the daemon is root and the system bus answers: elsewhere a sandboxed executor's
/// executions are refused (`spawn_failed`, reason `sandbox_unavailable`), never run unsandboxed.
final class UnitContainment: Sendable {
    /// The connection once made, and why the last attempt failed (tried again at the next use).
    private let connection = Mutex<(bus: SystemdBus?, failure: String?)>((nil, nil))
    /// Where cgroup v2 is mounted (unit cgroups are read and killed there), or nil.
    let cgroupMount: String?
    /// Why units cannot be used whatever happens later (no systemd, not root), or nil.
    let permanentReason: String?
    private let connect: @Sendable () -> Result<SystemdBus, SystemdBus.Failure>

    init(
        booted: Bool = sd_booted() > 0, root: Bool = geteuid() == 0,
        cgroupMount: String? = ContainmentSelection.unifiedMount(),
        connect: @escaping @Sendable () -> Result<SystemdBus, SystemdBus.Failure> = SystemdBus.connect
    ) {
        self.cgroupMount = cgroupMount
        self.connect = connect
        permanentReason =
            !booted
            ? "systemd is not the service manager here (not booted with systemd)"
            : !root
                ? "runvoyd is not root" : cgroupMount == nil ? "no cgroup v2 hierarchy is mounted" : nil
    }

    /// The bus connection, made on first use (and again after it broke), or why there is none.
    func bus() -> Result<SystemdBus, SpawnError> {
        if let permanentReason { return .failure(SpawnError(.sandboxUnavailable(permanentReason), errno: 0)) }
        return connection.withLock { current in
            if let bus = current.bus, bus.brokenReason == nil { return .success(bus) }
            switch connect() {
            case .success(let bus):
                current = (bus, nil)
                return .success(bus)
            case .failure(let failure):
                current.failure = "the system bus: \(failure.message)"
                return .failure(SpawnError(.sandboxUnavailable(current.failure!), errno: 0))
            }
        }
    }

    /// What start-up, `health` and `capabilities` say of sandboxed executors: nil when units can be started.
    var unavailableReason: String? {
        if case .failure(let error) = bus(), case .sandboxUnavailable(let why) = error.stage { return why }
        return nil
    }

    /// Why units cannot be started, as far as known without connecting: nil once connected (or not tried yet).
    var knownUnavailableReason: String? {
        permanentReason
            ?? connection.withLock { current in
                current.bus?.brokenReason.map { "the system bus: \($0)" }
                    ?? (current.bus == nil ? current.failure : nil)
            }
    }

    /// What `whoami`, `capabilities` and `health` add to the containment for the sandboxed executors of
    /// `executors` (nil without any): `unit`, or why they are refused.
    /// `detail`: whether to say why (system bus error text: administrators only).
    func summary(_ executors: [ExecutorConfig], detail: Bool) -> String? {
        let names = executors.filter { $0.sandbox != nil }.map(\.name)
        guard !names.isEmpty else { return nil }
        let list = names.joined(separator: ", ")
        if let reason = knownUnavailableReason {
            return "sandboxed executors refused (\(list))" + (detail ? ": \(reason)" : "")
        }
        return "unit for sandboxed executors (\(list))"
    }

    /// Starts `request` as the execution's unit. Returns once systemd has executed the command (or throws, with
    /// nothing left open or running).
    func start(
        _ request: SpawnRequest, executionID: String, executor: ExecutorConfig, runtimeDirectory: String
    ) async throws(SpawnError) -> (SpawnedProcess, UnitScope) {
        let bus = try bus().get()
        guard request.terminal == nil else {
            throw SpawnError(.unit("a sandboxed executor's commands run without a terminal"), errno: 0)
        }
        let ends = try PipeEnds(stdinPipe: request.stdinPipe)
        let environmentFile = runtimeDirectory + "/" + executionID + ".env"
        do throws(SystemError) {
            try UnitEnvironment.write(request.environment, to: environmentFile)
        } catch {
            ends.closeChildEnds()
            ends.closeParentEnds()
            throw SpawnError(.unit("cannot write the unit's environment file: \(error)"), errno: error.errno)
        }
        let recipe = UnitRecipe(
            executionID: executionID, executorName: executor.name, path: request.path, argv: request.argv,
            workingDirectory: request.workingDirectory, runAs: request.identity == nil ? nil : executor.runAs,
            stdio: (ends.stdin.read, ends.stdout.write, ends.stderr.write), environmentFile: environmentFile,
            executor: executor)
        let name = UnitRecipe.unitName(executionID)
        let started = await bus.startUnit(name, properties: recipe.properties)
        // systemd has its own copies of the command's ends, and has read the environment (Type=exec: the
        // command is executed by now).
        ends.closeChildEnds()
        unlink(environmentFile)
        let placeholder = open("/dev/null", O_RDONLY | O_CLOEXEC)
        switch started {
        case .failure(let failure):
            ends.closeParentEnds()
            if placeholder >= 0 { close(placeholder) }
            // The unit may run although the launch failed: end it, through its cgroup too (the bus may be gone).
            if let cgroupMount {
                try? CgroupFiles.write(cgroupMount + "/" + UnitRecipe.slice + "/" + name + "/cgroup.kill", "1")
            }
            bus.abandon(name)
            throw SpawnError(.unit(failure.message), errno: 0)
        case .success(let unit):
            guard placeholder >= 0 else {
                let saved = errno
                let scope = UnitScope(name: name, bus: bus, unit: unit, cgroupMount: cgroupMount ?? "")
                scope.kill()
                scope.release()
                ends.closeParentEnds()
                throw SpawnError(.devNull, errno: saved)
            }
            // The main process is systemd's child, not the daemon's: no pidfd is waited on (its end comes from
            // the unit), so a descriptor of /dev/null stands in for it.
            let process = SpawnedProcess(
                pid: unit.mainPID, pidfd: placeholder, stdinFD: ends.stdin.write >= 0 ? ends.stdin.write : nil,
                stdoutFD: ends.stdout.read, stderrFD: ends.stderr.read)
            return (process, UnitScope(name: name, bus: bus, unit: unit, cgroupMount: cgroupMount ?? ""))
        }
    }

    /// Kills what a previous run of the daemon left running in execution units (it crashed, or was killed),
    /// through their cgroups: returns each one's execution id and how many processes it held.
    func recoverLost() -> [(id: String, processes: Int)] {
        guard permanentReason == nil, let mount = cgroupMount else { return [] }
        let slice = mount + "/" + UnitRecipe.slice
        guard let directory = opendir(slice) else { return [] }
        var found: [(String, Int)] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix("runvoy-"), name.hasSuffix(".service"), entry.pointee.d_type == DT_DIR else {
                continue
            }
            let path = slice + "/" + name
            let count = CgroupFiles.pids(path + "/cgroup.procs").count
            try? CgroupFiles.write(path + "/cgroup.kill", "1")
            found.append((String(name.dropFirst(7).dropLast(8)), count))
        }
        closedir(directory)
        return found.sorted { $0.0 < $1.0 }
    }
}

/// One execution's unit: its cgroup is the execution's processes, and its end is the main process's end.
final class UnitScope: ExecutionScope {
    let name: String
    let unit: SystemdBus.Started
    /// The unit's cgroup directory.
    let cgroupPath: String
    private let bus: SystemdBus
    private let ended = Mutex<SystemdBus.Ended?>(nil)

    init(name: String, bus: SystemdBus, unit: SystemdBus.Started, cgroupMount: String) {
        self.name = name
        self.bus = bus
        self.unit = unit
        cgroupPath = cgroupMount + unit.controlGroup
    }

    var spawnHooks: SpawnHooks { SpawnHooks() }
    func spawned(leader: pid_t?) {}

    /// Every process in the unit's cgroup (none once systemd removed it).
    func processes() -> [pid_t] {
        unit.controlGroup.isEmpty ? [] : CgroupFiles.pids(cgroupPath + "/cgroup.procs")
    }

    /// The unit's processes outside the main process's process group.
    func members() -> [pid_t] {
        processes().filter { getpgid($0) != unit.mainPID || unit.mainPID <= 0 }
    }

    /// The main process's process group, found in the unit's cgroup: a process group id that systemd has since
    /// freed cannot name another process here.
    func signalMain(_ pid: pid_t, _ signal: Int32) -> Bool {
        guard unit.mainPID > 0 else { return false }
        let group = processes().filter { getpgid($0) == unit.mainPID }
        return group.reduce(false) { reached, member in Glibc.kill(member, signal) == 0 || reached }
    }

    func signal(_ signal: Int32) -> Int {
        members().reduce(0) { count, pid in Glibc.kill(pid, signal) == 0 ? count + 1 : count }
    }

    func kill() -> Int {
        let count = members().count
        if !unit.controlGroup.isEmpty { try? CgroupFiles.write(cgroupPath + "/cgroup.kill", "1") }
        return count
    }

    var isPopulated: Bool { !members().isEmpty }

    func release() { bus.unref(name) }

    /// How the unit's main process ended, from systemd (`ExecMainCode`, `ExecMainStatus`), once the unit is
    /// inactive: with `leftovers: kill` its other processes are killed by then, with `wait` they have exited.
    func waitMain(pidfd: Int32) async -> ExitStatus {
        switch await bus.waitEnd(unit.objectPath) {
        case .success(let end):
            ended.withLock { $0 = end }
            // CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3.
            return end.code == 1
                ? .exited(end.status) : end.code == 2 || end.code == 3 ? .signaled(end.status) : .signaled(SIGKILL)
        case .failure:
            // The connection is gone: the end cannot be known; kill what is left and report it lost.
            kill()
            return .signaled(SIGKILL)
        }
    }

    /// What systemd kept of the unit's accounting once it stopped: block I/O (its CPU time is only a total,
    /// which systemd logs as "Consumed"; peaks are gone with the cgroup).
    func usage() -> ResourceUsage? {
        guard let end = ended.withLock({ $0 }) else { return nil }
        var usage = ResourceUsage(source: "unit")
        usage.ioReadBytes = end.ioReadBytes.map { Int64(clamping: $0) }
        usage.ioWriteBytes = end.ioWriteBytes.map { Int64(clamping: $0) }
        return usage
    }
}
