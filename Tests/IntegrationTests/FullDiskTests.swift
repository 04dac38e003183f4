import Foundation
import Glibc
import RunvoyKit
import Testing

/// A full state directory (a small tmpfs) loses no outcome: the end of an execution reaches the history once it
/// can, output that could not be stored is counted and marked as dropped, runvoyd starts and answers on a full
/// disk and refuses new executions with `store_unavailable` until space is back, and a free-space reserve
/// refuses them early.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class FullDiskTests {
    let directory: String
    var state: String { directory + "/state" }
    var filler: String { state + "/filler" }

    init() throws {
        directory = try Harness.makeTemporaryDirectory()
        mkdir(state, 0o700)
        let mounted = try Harness.run(["/usr/bin/mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", state])
        guard mounted.status == 0 else { throw HarnessError("mount tmpfs: \(mounted.stderrText)") }
    }

    deinit {
        _ = try? Harness.run(["/usr/bin/umount", "-l", state])
        try? FileManager.default.removeItem(atPath: directory)
    }

    func startDaemon(reserve: String = "0") throws -> DaemonFixture {
        // The fixture's own directory holds the socket and configuration; the history lives on the small tmpfs.
        let state = state
        return try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0, extra: "history:\n  min_free_bytes: \(reserve)\n")
                .replacingOccurrences(of: "state_directory: \($0)/state", with: "state_directory: \(state)")
        })
    }

    /// Writes `bytes` of zeros to the filler file, or until the file system is full (nil).
    func fill(_ bytes: Int? = nil) {
        let fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        defer { close(fd) }
        var block = [UInt8](repeating: 0, count: 64 << 10)
        var left = bytes ?? Int.max
        while left > 0 {
            let n = block.withUnsafeMutableBytes { write(fd, $0.baseAddress, min($0.count, left)) }
            if n <= 0 { return }
            left -= n
        }
    }

    func freeSpace() { unlink(filler) }

    func status(_ daemon: DaemonFixture, _ id: String) throws -> ExecutionInfo {
        let out = try daemon.ctl(["status", "--json", id], timeout: 20)
        guard out.status == 0 else { throw HarnessError("status \(id) failed: \(out.stderrText)") }
        return try JSONDecoder().decode(ExecutionInfo.self, from: out.stdout)
    }

    /// `health` fails (exit 2) on the disk check once free space is below the reserve (the thresholds are unit-tested
    /// in `HealthChecksTests`).
    @Test func healthReportsADiskBelowTheReserve() throws {
        let daemon = try startDaemon(reserve: "2MiB")
        defer { daemon.stop() }
        #expect(try daemon.ctl(["health"], timeout: 20).status == 0)
        fill()
        let full = try daemon.ctl(["health", "--json"], timeout: 20)
        #expect(full.status == 2)
        let disk = try JSONDecoder().decode(HealthResult.self, from: full.stdout).checks.first { $0.name == "disk" }
        #expect(disk?.status == .failing && disk?.message.contains("refused") == true, "\(String(describing: disk))")
        freeSpace()
        #expect(try daemon.ctl(["health"], timeout: 20).status == 0)
    }

    @Test func theEndOfAnExecutionReachesTheHistoryWhenTheDiskFillsUp() throws {
        var daemon: DaemonFixture? = try startDaemon()
        // Some space to give back later.
        fill(1 << 20)
        // The command's own output fills the disk while it runs.
        let out = try daemon!.ctl(["exec", "--", "sh", "-c", "yes | head -c 30M"], timeout: 60)
        #expect(out.status == 0)
        #expect(out.stdout.count == 30 << 20)
        let id = try #require(ExecTests.executionID(out.stderrText))

        // Never reported as running once it has ended; its output totals say what was not stored.
        var info = try status(daemon!, id)
        #expect(info.status == .succeeded)
        #expect(info.exitCode == 0)
        #expect(info.stdoutBytes == 30 << 20)
        #expect(info.droppedBytes > 0)
        #expect(info.storedBytes + info.droppedBytes == 30 << 20)
        let listed = try daemon!.ctl(["list", "--json"], timeout: 20).stdoutText
        #expect(!listed.contains(#""status":"running""#))

        // `logs` says where output is missing.
        let logs = try daemon!.ctl(["logs", id], timeout: 60)
        #expect(logs.status == 0)
        #expect(logs.stdout.count == Int(info.storedBytes))
        #expect(logs.stderrText.contains("bytes of output were not stored"), "\(logs.stderrText)")

        // Once there is space again the outcome is written, and it survives a restart (not `lost`).
        freeSpace()
        let ok = try daemon!.ctl(["exec", "-q", "--", "true"], timeout: 20)
        #expect(ok.status == 0, "\(ok.stderrText)")
        #expect(daemon!.stop() == 0)
        daemon = nil
        daemon = try startDaemon()
        info = try status(daemon!, id)
        #expect(info.status == .succeeded)
        #expect(info.droppedBytes > 0)
        #expect(info.stdoutBytes == 30 << 20)
        daemon!.stop()
    }

    @Test func runvoydStartsOnAFullDiskAndRefusesExecutionsUntilThereIsSpace() throws {
        var daemon: DaemonFixture? = try startDaemon()
        let first = try daemon!.ctl(["exec", "-q", "--", "echo", "hello"], timeout: 20)
        #expect(first.status == 0)
        // A daemon killed while an execution runs: the next start must record it as lost, on a full disk.
        let detached = try daemon!.ctl(["exec", "--detach", "--", "sleep", "300"], timeout: 20)
        let id = detached.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 26, "\(detached.stderrText)")
        daemon!.process.signal(SIGKILL)
        daemon!.process.wait()
        daemon = nil
        fill()

        daemon = try startDaemon()
        #expect(try daemon!.ctl(["whoami"], timeout: 20).status == 0)
        let listed = try daemon!.ctl(["list"], timeout: 20)
        #expect(listed.status == 0)
        #expect(try status(daemon!, id).status == .lost)
        let refused = try daemon!.ctl(["exec", "-q", "--", "true"], timeout: 20)
        #expect(refused.status == 125)
        #expect(refused.stderrText.contains("store_unavailable"), "\(refused.stderrText)")

        freeSpace()
        let again = try daemon!.ctl(["exec", "-q", "--", "echo", "back"], timeout: 20)
        #expect(again.status == 0, "\(again.stderrText)")
        #expect(again.stdoutText == "back\n")
        // The lost execution's record reached the database too: it stays lost after another restart.
        #expect(daemon!.stop() == 0)
        daemon = try startDaemon()
        let info = try status(daemon!, id)
        #expect(info.status == .lost)
        #expect(info.finishedAtMs != nil)
        daemon!.stop()
    }

    /// Free bytes on the small file system that holds the history.
    func freeBytes() -> Int {
        var info = statvfs()
        guard statvfs(state, &info) == 0 else { return 0 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    @Test func executionsAreRefusedEarlyBelowTheFreeSpaceReserve() throws {
        // The reserve is half of what a history with one execution leaves free (how much the database and its
        // log take depends on SQLite's checkpoints, so it is measured, not assumed).
        let first = try startDaemon()
        #expect(try first.ctl(["exec", "-q", "--", "true"], timeout: 20).status == 0)
        #expect(first.stop() == 0)
        let free = freeBytes()
        let reserve = free / 2
        let daemon = try startDaemon(reserve: String(reserve))
        defer { daemon.stop() }
        let ok = try daemon.ctl(["exec", "-q", "--", "true"], timeout: 20)
        #expect(ok.status == 0, "\(ok.stderrText)")
        fill(free - reserve / 2)
        let refused = try daemon.ctl(["exec", "-q", "--", "true"], timeout: 20)
        #expect(refused.status == 125)
        #expect(refused.stderrText.contains("store_unavailable"), "\(refused.stderrText)")
        #expect(refused.stderrText.contains("free"), "\(refused.stderrText)")
        freeSpace()
        let again = try daemon.ctl(["exec", "-q", "--", "true"], timeout: 20)
        #expect(again.status == 0, "\(again.stderrText)")
    }
}
