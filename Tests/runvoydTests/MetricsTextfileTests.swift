import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// The metrics textfile's failures: a folder it cannot open, a rename refused (a directory at the file's name), a
/// write refused (a full file system); each leaves no temporary file behind, is said once while it lasts, and
/// the file is written again (and said so) once the cause is gone.
@Suite(.serialized)
struct MetricsTextfileTests {
    static let exposition = Array("# TYPE runvoy_test gauge\nrunvoy_test 1\n".utf8)

    /// How many times the exposition was asked for: one a round.
    final class Rounds: Sendable {
        let count = Mutex<Int>(0)
    }

    static func makeFolder() -> String {
        var template = Array("/tmp/runvoy-textfile-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    static func entries(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    }

    /// Waits (a bounded poll, not a timing assertion) until `condition` holds.
    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<6000 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test func aFolderThatCannotBeOpenedWritesNothingAndSaysSo() async throws {
        let recorder = LogRecorder()
        let folder = Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/missing/runvoyd.prom"
        let textfile = MetricsTextfile(
            path: path, interval: .seconds(3600), logger: recorder.logger, exposition: { Self.exposition })
        // It gives up at once: no loop that would wait an hour.
        try await textfile.run()
        let warnings = recorder.lines("cannot open the metrics textfile's folder; no textfile is written")
        #expect(warnings.count == 1)
        #expect(warnings.first?.level == .warning)
        #expect(warnings.first?.metadata["path"] == folder + "/missing")
        #expect(warnings.first?.metadata["error"] == "No such file or directory")
        #expect(Self.entries(folder) == [])
    }

    @Test func aRefusedRenameLeavesNoTemporaryFile() throws {
        let folder = Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A non-empty directory where the file goes: renaming a file over it fails (EISDIR).
        #expect(mkdir(folder + "/runvoyd.prom", 0o755) == 0)
        #expect(creat(folder + "/runvoyd.prom/keep", 0o644) >= 0)
        let directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(directory) }
        let textfile = MetricsTextfile(
            path: folder + "/runvoyd.prom", interval: .seconds(1), logger: LogRecorder().logger,
            exposition: { Self.exposition })
        let error = #expect(throws: SystemError.self) { try textfile.write(in: directory, name: "runvoyd.prom") }
        #expect(error?.errno == EISDIR)
        #expect(error?.call.hasPrefix("rename .runvoyd.prom.") == true, "\(String(describing: error))")
        #expect(Self.entries(folder) == ["runvoyd.prom"], "the temporary file is removed")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to mount a small tmpfs"))
    func aRefusedWriteLeavesNoTemporaryFile() throws {
        let folder = Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(mount("tmpfs", folder, "tmpfs", 0, "size=64k,mode=0755") == 0, "\(SystemError.text())")
        defer { umount2(folder, Int32(MNT_DETACH)) }
        let directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(directory) }
        // More than the file system holds: a write ends with ENOSPC.
        let textfile = MetricsTextfile(
            path: folder + "/runvoyd.prom", interval: .seconds(1), logger: LogRecorder().logger,
            exposition: { [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20) })
        let error = #expect(throws: SystemError.self) { try textfile.write(in: directory, name: "runvoyd.prom") }
        #expect(error?.errno == ENOSPC)
        #expect(error?.call.hasPrefix("write .runvoyd.prom.") == true, "\(String(describing: error))")
        #expect(Self.entries(folder) == [], "the temporary file is removed")
    }

    @Test func aFailureIsSaidOnceAndTheRecoveryToo() async throws {
        let recorder = LogRecorder()
        let folder = Self.makeFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/runvoyd.prom"
        #expect(mkdir(path, 0o755) == 0)
        #expect(creat(path + "/keep", 0o644) >= 0)
        let rounds = Rounds()
        let textfile = MetricsTextfile(
            path: path, interval: .milliseconds(10), logger: recorder.logger,
            exposition: {
                rounds.count.withLock { $0 += 1 }
                return Self.exposition
            })
        let task = Task { try await textfile.run() }
        let failed = "cannot write the metrics textfile"
        let again = "metrics textfile written again"
        // Several rounds fail while the directory is there: said once.
        #expect(await Self.eventually { rounds.count.withLock { $0 } >= 3 })
        #expect(Self.entries(folder) == ["runvoyd.prom"])
        FileSystem.removeTree(path)
        #expect(await Self.eventually { !recorder.lines(again).isEmpty })
        #expect(recorder.lines(failed).count == 1)
        #expect(recorder.lines(failed).first?.metadata["path"] == path)
        #expect(recorder.lines(again).count == 1)
        #expect(recorder.lines(again).first?.level == .notice)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == String(decoding: Self.exposition, as: UTF8.self))
        task.cancel()
        try await task.value
        // At the end the file is removed: stale figures do not outlive the daemon.
        #expect(Self.entries(folder) == [])
    }
}
