import Foundation
import Glibc
import RunvoyKit
import Testing

/// The daemon's sockets are made where no other account can touch them: a folder another account may write (the
/// main socket's or the metrics socket's, sticky or not) is refused with words that say why, and the socket has
/// its configured mode and group. (A symlink planted at the path: `ObservabilityHardeningTests`.)
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct SocketPermissionTests {
    /// Starts a daemon whose `which` socket is in a folder of `mode`, and returns its exit status (nil: it
    /// served) and its log.
    static func start(folderMode: mode_t, metrics: Bool) throws -> (status: Int32?, log: String) {
        let daemon = try DaemonFixture(
            config: { directory in
                mkdir(directory + "/open", 0o755)
                chmod(directory + "/open", folderMode)
                let config = DaemonFixture.standardConfig(
                    directory: directory, extra: metrics ? "metrics:\n  socket: \(directory)/open/metrics.sock\n" : "")
                return metrics
                    ? config
                    : config.replacingOccurrences(
                        of: "path: \(directory)/runvoyd.sock", with: "path: \(directory)/open/runvoyd.sock")
            }, waitForSocket: false)
        let status = daemon.process.wait(seconds: 30)
        if status == nil { _ = daemon.stop() }
        return (status, daemon.log)
    }

    @Test(arguments: [0o777, 0o1777, 0o775, 0o757] as [mode_t])
    func aSocketFolderAnotherAccountMayWriteIsRefused(mode: mode_t) throws {
        let (status, log) = try Self.start(folderMode: mode, metrics: false)
        #expect(status != nil && status != 0, "runvoyd served from a folder of mode \(String(mode, radix: 8))")
        #expect(log.contains("may be written by another account"), "\(log)")
    }

    @Test func theMetricsSocketsFolderIsCheckedToo() throws {
        let (status, log) = try Self.start(folderMode: 0o1777, metrics: true)
        #expect(status != nil && status != 0, "runvoyd served metrics from a sticky folder")
        #expect(log.contains("may be written by another account"), "\(log)")
    }

    @Test func theSocketHasItsConfiguredModeAndGroup() throws {
        let daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(of: "mode: \"0666\"", with: "mode: \"0660\"\n  group: adm")
        })
        defer { daemon.stop() }
        var info = stat()
        #expect(lstat(daemon.socketPath, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK && info.st_mode & 0o7777 == 0o660)
        #expect(getgrgid(info.st_gid).map { String(cString: $0.pointee.gr_name) } == "adm")
        #expect(try daemon.ctl(["exec", "--", "true"]).status == 0)
    }
}
