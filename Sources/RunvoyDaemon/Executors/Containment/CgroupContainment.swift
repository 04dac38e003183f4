import CRunvoyPosix
import Glibc
import RunvoyConfig
import RunvoyKit

/// Containment in the daemon's delegated cgroup v2 subtree `root`: the daemon itself in `root/daemon` (a cgroup
/// with processes may not have children with controllers), each execution in `root/executions/ID`, which its
/// command enters in the child before exec, so nothing it starts is ever outside it. Ending an execution is
/// `cgroup.kill`; whether anything is left is `cgroup.events`; its accounting is its `cpu.stat`, `memory.peak`,
/// `pids.peak` and `io.stat`.
final class CgroupContainment: Containment {
    let root: String
    var executions: String { root + "/executions" }
    /// Controllers enabled for the executions' cgroups.
    let controllers: Set<String>
    let notes: [String]
    var mode: ContainmentMode { .cgroup }

    /// The controllers limits need, in the order `cgroup.subtree_control` takes them.
    static let wanted = ["cpu", "io", "memory", "pids"]

    /// Moves this process into `root/daemon`, makes `root/executions` and enables what controllers it can there.
    init(root: String) throws(SystemError) {
        self.root = root
        try Self.makeDirectory(root + "/daemon")
        try CgroupFiles.write(root + "/daemon/cgroup.procs", "0")
        try Self.makeDirectory(root + "/executions")
        let available = Set(
            (CgroupFiles.read(root + "/cgroup.controllers") ?? "").split(separator: " ").map(String.init))
        var enabled = Set<String>()
        for controller in Self.wanted where available.contains(controller) {
            let add = "+\(controller)"
            if (try? CgroupFiles.write(root + "/cgroup.subtree_control", add)) != nil,
                (try? CgroupFiles.write(root + "/executions/cgroup.subtree_control", add)) != nil
            {
                enabled.insert(controller)
            }
        }
        controllers = enabled
        let missing = Self.wanted.filter { !enabled.contains($0) }
        notes =
            missing.isEmpty
            ? []
            : [
                "cgroup controllers not enabled in the delegated subtree (limits on them are not written): "
                    + missing.joined(separator: ", ")
            ]
    }

    private static func makeDirectory(_ path: String) throws(SystemError) {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir \(path)") }
    }

    func scope(
        executionID: String, executor: ExecutorConfig, caller uid: uid_t
    ) throws(SpawnError) -> any ExecutionScope {
        let path = executions + "/" + executionID
        guard mkdir(path, 0o755) == 0 else { throw SpawnError(.cgroup, errno: errno) }
        for (file, value) in executor.limits.cgroupFiles
        where controllers.contains(ExecutionLimits.controller(of: file)) {
            do throws(SystemError) {
                try CgroupFiles.write(path + "/" + file, value)
            } catch {
                rmdir(path)
                throw SpawnError(.cgroup, errno: error.errno)
            }
        }
        let directory = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let procs = open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard procs >= 0, directory >= 0 else {
            let saved = errno
            if procs >= 0 { close(procs) }
            if directory >= 0 { close(directory) }
            rmdir(path)
            throw SpawnError(.cgroup, errno: saved)
        }
        // The caller's uid as the command's login uid: unset, the command could set any uid once itself and have
        // auditd and journald name another user (review of issue 13); set, only CAP_AUDIT_CONTROL changes it.
        return CgroupScope(path: path, procsFD: procs, directoryFD: directory, loginUID: uid)
    }

    /// Ends and removes the cgroups of executions a previous run of the daemon left (it crashed, or was killed):
    /// returns each one's execution id and how many processes it still held.
    func recoverLost() -> [(id: String, processes: Int)] {
        guard let directory = opendir(executions) else { return [] }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." && entry.pointee.d_type == DT_DIR { names.append(name) }
        }
        closedir(directory)
        return names.sorted().map { name in
            let scope = CgroupScope(path: executions + "/" + name, procsFD: -1)
            let count = scope.kill()
            scope.release()
            return (name, count)
        }
    }
}

/// One execution's cgroup.
final class CgroupScope: ExecutionScope {
    let path: String
    /// The cgroup's `cgroup.procs` and directory, open until the command is spawned.
    private let spawnFDs: Mutex<(procs: Int32, directory: Int32)>
    private let leader = Mutex<pid_t?>(nil)

    /// The login uid the command gets (the caller's), nil for a scope found at start-up.
    private let loginUID: uid_t?

    init(path: String, procsFD: Int32, directoryFD: Int32 = -1, loginUID: uid_t? = nil) {
        self.loginUID = loginUID
        self.path = path
        self.spawnFDs = Mutex((procsFD, directoryFD))
    }

    var spawnHooks: SpawnHooks {
        let fds = spawnFDs.withLock { $0 }
        return SpawnHooks(cgroupProcsFD: fds.procs, cgroupDirectoryFD: fds.directory, loginUID: loginUID)
    }

    func spawned(leader: pid_t?) {
        spawnFDs.withLock { fds in
            if fds.procs >= 0 { close(fds.procs) }
            if fds.directory >= 0 { close(fds.directory) }
            fds = (-1, -1)
        }
        if let leader {
            self.leader.withLock { $0 = leader }
        } else {
            rmdir(path)
        }
    }

    /// The processes in the cgroup but the main one.
    func members() -> [pid_t] {
        let main = leader.withLock { $0 }
        return CgroupFiles.pids(path + "/cgroup.procs").filter { $0 != main }
    }

    func signal(_ signal: Int32) -> Int {
        members().reduce(0) { count, pid in Glibc.kill(pid, signal) == 0 ? count + 1 : count }
    }

    func kill() -> Int {
        let count = members().count
        try? CgroupFiles.write(path + "/cgroup.kill", "1")
        return count
    }

    var isPopulated: Bool {
        guard let events = CgroupFiles.read(path + "/cgroup.events") else { return false }
        return CgroupFiles.keyed(events)["populated"] == 1 && !members().isEmpty
    }

    func release() {
        // What was killed takes a moment to exit; a cgroup with processes cannot be removed.
        for attempt in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            if errno != EBUSY { return }
            if attempt % 20 == 0 { try? CgroupFiles.write(path + "/cgroup.kill", "1") }
            usleep(5000)
        }
    }

    func usage() -> ResourceUsage? {
        guard let cpu = CgroupFiles.read(path + "/cpu.stat").map(CgroupFiles.keyed) else { return nil }
        var usage = ResourceUsage(cpuUserUsec: cpu["user_usec"], cpuSystemUsec: cpu["system_usec"], source: "cgroup")
        usage.memoryPeakBytes = CgroupFiles.read(path + "/memory.peak").flatMap { Int64($0.filter(\.isNumber)) }
        usage.tasksPeak = CgroupFiles.read(path + "/pids.peak").flatMap { Int64($0.filter(\.isNumber)) }
        if let io = CgroupFiles.read(path + "/io.stat") {
            var read: Int64 = 0
            var written: Int64 = 0
            for field in io.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
                if field.hasPrefix("rbytes="), let value = Int64(field.dropFirst(7)) { read += value }
                if field.hasPrefix("wbytes="), let value = Int64(field.dropFirst(7)) { written += value }
            }
            usage.ioReadBytes = read
            usage.ioWriteBytes = written
        }
        return usage
    }
}
