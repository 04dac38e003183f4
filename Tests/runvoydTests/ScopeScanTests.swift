import CRunvoyPosix
import Foundation
import Glibc
import Testing

/// The subreaper's /proc scan (`runvoy_scope_members`, `runvoy_scope_signal`) against a reference written here
/// independently: the quadratic fix-point the scan used before it became a breadth-first search (review of
/// issue 13), over a real process tree with a `setsid` branch and a process that is not the execution's.
@Suite(.serialized) struct ScopeScanTests {
    private struct Entry {
        var pid: pid_t, ppid: pid_t, pgrp: pid_t, session: pid_t
    }

    /// Every live process but this one, from /proc.
    private static func processes() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { name -> Entry? in
            guard let pid = pid_t(name), pid != getpid(),
                let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 3, fields[0] != "Z", fields[0] != "X", let ppid = pid_t(fields[1]),
                let pgrp = pid_t(fields[2]), let session = pid_t(fields[3])
            else { return nil }
            return Entry(pid: pid, ppid: ppid, pgrp: pgrp, session: session)
        }
    }

    /// The reference: members by group or session, then descendants until nothing changes.
    private static func reference(leader: pid_t) -> Set<pid_t> {
        let all = processes()
        var members = Set(all.filter { $0.pid == leader || $0.pgrp == leader || $0.session == leader }.map(\.pid))
        var changed = true
        while changed {
            changed = false
            for entry in all where !members.contains(entry.pid) && members.contains(entry.ppid) {
                members.insert(entry.pid)
                changed = true
            }
        }
        members.remove(leader)
        return members
    }

    private static func scanned(leader: pid_t) -> Set<pid_t> {
        var pids = [pid_t](repeating: 0, count: 1024)
        let count = pids.withUnsafeMutableBufferPointer {
            runvoy_scope_members(leader, 0xffff_ffff, $0.baseAddress, 1024)
        }
        return Set(pids.prefix(max(0, Int(count))))
    }

    private static func commandLine(_ pid: pid_t) -> String {
        let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
    }

    /// Spawns `argv` in a session of its own (so it leads its session and process group), or throws.
    private static func spawn(_ argv: [String], newSession: Bool) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (glibc 2.26), which the Glibc module does not import.
        if newSession { posix_spawnattr_setflags(&attributes, 0x80) }
        var pid: pid_t = 0
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        let rc = posix_spawn(&pid, argv[0], nil, &attributes, cArguments, environ)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL) }
        return pid
    }

    @Test func theScanFindsWhatTheReferenceFindsAndSignalsOnlyThat() throws {
        // The leader leads its own session and process group.
        let leader = try Self.spawn(
            [
                "/bin/sh", "-c",
                "sh -c 'sleep 3101' & (setsid sh -c 'sleep 3102 & sleep 3103; :') & "
                    + "(sh -c '(sleep 3104 &); sleep 3106') & sleep 3107; :",
            ], newSession: true)
        let outsider = try Self.spawn(["/bin/sleep", "3105"], newSession: false)
        var found = Set<pid_t>()
        defer {
            for pid in found { kill(pid, SIGKILL) }
            kill(-leader, SIGKILL)
            kill(outsider, SIGKILL)
            var status: Int32 = 0
            waitpid(leader, &status, 0)
            waitpid(outsider, &status, 0)
        }
        let sleeps = ["3101", "3102", "3103", "3104", "3106", "3107"].map { "sleep \($0) " }
        let deadline = Date().addingTimeInterval(20)
        repeat {
            found = Self.scanned(leader: leader)
            let lines = found.map(Self.commandLine)
            if sleeps.allSatisfy({ sleep in lines.contains(sleep) }) { break }
            usleep(50_000)
        } while Date() < deadline
        let lines = Set(found.map(Self.commandLine))
        for sleep in sleeps { #expect(lines.contains(sleep), "\(sleep) not found: \(lines)") }
        #expect(!found.contains(outsider))
        #expect(found == Self.reference(leader: leader))

        var signalled = [pid_t](repeating: 0, count: 64)
        let count = signalled.withUnsafeMutableBufferPointer {
            runvoy_scope_signal(leader, 0xffff_ffff, SIGKILL, $0.baseAddress, 64)
        }
        #expect(Set(signalled.prefix(max(0, count))) == found)
        #expect(kill(outsider, 0) == 0, "the outsider was signalled")
    }
}
