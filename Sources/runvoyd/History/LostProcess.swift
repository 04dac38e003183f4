import Glibc

/// The process of an execution a previous daemon left running, found again by pid and checked to be the same
/// process (its start time, its uid and its own process group) before it is ended: a pid alone may have been
/// reused.
enum LostProcess {
    enum Outcome: String {
        /// No process with that identity exists (it ended, or the pid belongs to another process now).
        case gone
        /// It was still running, with its process group; both were sent SIGKILL.
        case killed
    }

    /// How far the start time read from /proc may be from the recorded one: the kernel's boot time has a
    /// resolution of a second and moves with clock adjustments.
    static let startTolerance: Int64 = 10_000

    /// Ends the process group of `pid` if its leader is the process that started at `startedAtMs` (wall clock)
    /// as `uid`.
    static func end(pid: Int32, startedAtMs: Int64, uid: uid_t) -> Outcome {
        guard pid > 1, let process = read(pid), process.pgid == pid, process.uid == uid,
            abs(process.startedAtMs - startedAtMs) <= startTolerance
        else { return .gone }
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        return .killed
    }

    struct Process {
        var pgid: Int32
        var uid: uid_t
        var startedAtMs: Int64
    }

    /// Reads a process's group, real uid and start time (wall-clock ms) from /proc.
    static func read(_ pid: Int32) -> Process? {
        guard let stat = text("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")"),
            let status = text("/proc/\(pid)/status"), let system = text("/proc/stat")
        else { return nil }
        // After the command name: state is field 3, pgrp field 5, starttime field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let pgid = Int32(fields[2]), let ticks = Int64(fields[19]) else { return nil }
        guard let uidLine = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
            let uid = uidLine.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({
                UInt32($0)
            }),
            let bootLine = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Int64(bootLine.dropFirst("btime ".count))
        else { return nil }
        let hertz = Int64(sysconf(Int32(_SC_CLK_TCK)))
        guard hertz > 0 else { return nil }
        return Process(pgid: pgid, uid: uid, startedAtMs: boot * 1000 + ticks * 1000 / hertz)
    }

    private static func text(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
