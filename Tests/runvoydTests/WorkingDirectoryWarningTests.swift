import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/CONFIGURATION.md (`working_directory`): a working directory another account could change is warned of at
/// start and by `--check-config`: programs read files from their working directory (`python3 -c` and `-m` put it
/// first on `sys.path`), so whoever can write there runs code as the run-as user. (Review of fb808e6, finding 2.)
@Suite(.enabled(if: geteuid() == 0, "needs root: the folders are made in /run, away from the sticky /tmp"))
struct WorkingDirectoryWarningTests {
    static func config(_ directory: String) throws -> DaemonConfig {
        try ConfigLoader.parse(
            yaml: """
                executors:
                  x:
                    run_as: {user: nobody}
                    working_directory: \(directory)
                    commands: any
                """, file: "wd.yaml")
    }

    @Test func aWorkingDirectoryOthersCanWriteIsWarnedOfAndAPrivateOneIsNot() throws {
        // Not under /tmp: a folder there is never a safe working directory (see below).
        var template = Array("/run/runvoy-wd-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(directory) }
        #expect(chmod(directory, 0o755) == 0)
        #expect(RunvoydCommand.changeableWorkingDirectories(try Self.config(directory)).isEmpty)
        #expect(chmod(directory, 0o777) == 0)
        let warnings = RunvoydCommand.changeableWorkingDirectories(try Self.config(directory))
        #expect(
            warnings == [
                "executors.x.working_directory: \(directory) may be changed by an account other than root or 'nobody'; programs read files from their working directory (python3 -c and -m put it first on sys.path), so that account could run code as 'nobody'. Use a folder only root or 'nobody' can write"
            ])
        // A sticky folder everyone may write (/tmp) is no working directory: anyone may put files there.
        #expect(RunvoydCommand.changeableWorkingDirectories(try Self.config("/tmp")).count == 1)
        // A folder of the run-as user's in a sticky folder everyone may write: after a reboot empties it, anyone may
        // make it first (review of 460e985).
        #expect(mkdir("/tmp/runvoy-wd-app-\(getpid())", 0o755) == 0)
        defer { rmdir("/tmp/runvoy-wd-app-\(getpid())") }
        #expect(
            RunvoydCommand.changeableWorkingDirectories(try Self.config("/tmp/runvoy-wd-app-\(getpid())")).first?
                .hasPrefix("executors.x.working_directory: /tmp may be changed") == true)
        // A folder below one another account owns.
        #expect(chmod(directory, 0o755) == 0 && mkdir(directory + "/below", 0o755) == 0)
        #expect(chown(directory, 1, 1) == 0)
        let below = RunvoydCommand.changeableWorkingDirectories(try Self.config(directory + "/below"))
        #expect(below.first?.hasPrefix("executors.x.working_directory: \(directory) may be changed") == true)
    }
}
