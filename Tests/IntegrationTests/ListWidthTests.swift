import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl list` against a real runvoyd, its output not a terminal: fitted to `$COLUMNS` when set (the command
/// cut, then columns left out), whole otherwise; an execution ended by a signal shows it in EXIT.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct ListWidthTests {
    static func list(_ daemon: DaemonFixture, columns: String?) throws -> Harness.Output {
        var environment = ProcessInfo.processInfo.environment
        environment["COLUMNS"] = columns
        return try Harness.run(
            [Harness.runvoyctl, "list", "--socket", daemon.socketPath], environment: environment, timeout: 60)
    }

    @Test func listFitsColumnsWhenSetAndShowsEverythingOtherwise() throws {
        let daemon = try DaemonFixture()
        defer { daemon.stop() }
        let long = String(repeating: "y", count: 120)
        #expect(try daemon.ctl(["exec", "-q", "--", "echo", long]).status == 0)
        #expect(try daemon.ctl(["exec", "-q", "--", "sh", "-c", "kill -KILL $$"]).status == 128 + SIGKILL)

        let whole = try Self.list(daemon, columns: nil)
        #expect(whole.status == 0, "\(whole.stderrText)")
        let wholeLines = whole.stdoutText.split(separator: "\n")
        #expect(wholeLines.first?.hasPrefix("ID") == true)
        for name in ["STATUS", "USER", "EXECUTOR", "CREATED", "DURATION", "EXIT", "COMMAND"] {
            #expect(wholeLines.first?.contains(name) == true, "\(name) in \(whole.stdoutText)")
        }
        #expect(wholeLines.contains { $0.hasSuffix("echo " + long) }, "\(whole.stdoutText)")
        #expect(wholeLines.contains { $0.contains(" sig9 ") }, "\(whole.stdoutText)")

        let fitted = try Self.list(daemon, columns: "72")
        #expect(fitted.status == 0, "\(fitted.stderrText)")
        let lines = fitted.stdoutText.split(separator: "\n")
        #expect(lines.count == wholeLines.count)
        #expect(lines.allSatisfy { $0.count <= 72 }, "\(fitted.stdoutText)")
        // DURATION goes first, then CREATED: what is left says which execution, how it ended, and what it ran.
        let header = try #require(lines.first)
        #expect(!header.contains("DURATION") && !header.contains("CREATED"), "\(header)")
        #expect(header.hasPrefix("ID") && header.contains("STATUS") && header.hasSuffix("COMMAND"), "\(header)")
        #expect(lines.contains { $0.contains("echo yyy") && $0.hasSuffix("y…") }, "\(fitted.stdoutText)")

        // A value that is not a width is ignored.
        let ignored = try Self.list(daemon, columns: "wide")
        #expect(ignored.stdoutText == whole.stdoutText)
    }
}
