import Glibc
import RunvoyKit

/// The process of an execution a previous daemon left running, found again by pid and checked to be the very
/// same process before it is ended: the boot it started in, its start time in clock ticks after boot (both
/// recorded when it was spawned), its uid and its own process group. A pid alone may have been reused, also
/// after a reboot.
enum LostProcess {
    enum Outcome: String {
        /// No process with that identity exists (it ended, or the pid belongs to another process now).
        case gone
        /// It was still running, with its process group; both were sent SIGKILL.
        case killed
    }

    /// This boot's id (/proc/sys/kernel/random/boot_id).
    static let bootID: String? = text("/proc/sys/kernel/random/boot_id").map { String($0.filter { $0 != "\n" }) }

    /// Ends the process group of `pid` if its leader is exactly the process that was spawned: same boot, same
    /// start time, same uid, leading its own group.
    static func end(pid: Int32, startTicks: Int64, bootID: String, uid: uid_t) -> Outcome {
        guard pid > 1, bootID == Self.bootID, let process = read(pid), process.pgid == pid, process.uid == uid,
            process.startTicks == startTicks
        else { return .gone }
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        return .killed
    }

    struct Process {
        var pgid: Int32
        var uid: uid_t
        /// Start time in clock ticks after boot (/proc/PID/stat field 22).
        var startTicks: Int64
    }

    /// Reads a process's group, real uid and start time from /proc.
    static func read(_ pid: Int32) -> Process? {
        guard let stat = text("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")"),
            let status = text("/proc/\(pid)/status")
        else { return nil }
        // After the command name: state is field 3, pgrp field 5, starttime field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let pgid = Int32(fields[2]), let ticks = Int64(fields[19]) else { return nil }
        guard let uidLine = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
            let uid = uidLine.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({
                UInt32($0)
            })
        else { return nil }
        return Process(pgid: pgid, uid: uid, startTicks: ticks)
    }

    private static func text(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in
                SystemCall.retrying { Glibc.read(fd, raw.baseAddress, raw.count) }
            }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
