import Foundation
import Glibc
import RunvoyKit
import Testing

/// Security review of `runvoyctl edit` (issue 16, item 4; PoC from branch revedit, failed on 3278b33 and
/// f8e5ea2): the edit's history record keeps a unified diff with three lines of context, and it was visible to
/// everyone with `view_all` (viewers, operators): lines of a root-only file that the edit did not even touch (here
/// a password next to the changed line) reached a read-only viewer who could never read the file. Redaction covers
/// only the executor's runvoyd secrets. The diff is now shown only to the editor and administrators; the others
/// see the record (hashes, sizes) with `status`. (The PoC asked the viewer to see the changed line: even changed
/// lines are lines of the file, so the viewer now sees none.)
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class EditDiffVisibilityTests {
    let daemon: DaemonFixture
    let suffix: String
    /// Root-owned, 0755, with `etc` (editable as root).
    let base: String
    var dev: String { "rvd\(suffix)-dev" }
    var viewer: String { "rvd\(suffix)-view" }
    var op: String { "rvd\(suffix)-op" }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        try TestUsers.add(["dev", "view", "op"].map { "rvd\(suffix)-\($0)" })
        base = try Harness.makeTemporaryDirectory()
        chmod(base, 0o755)
        let base = base
        mkdir("\(base)/etc", 0o755)
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(
                directory: directory,
                extra: """
                      rootfiles:
                        run_as: {user: root}
                        allow:
                          users: ["*"]
                        editable: [\(base)/etc]
                        commands: any
                    """
            )
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n",
                with: "roles:\n  developer: {users: [rvd\(suffix)-dev]}\n  viewer: {users: [rvd\(suffix)-view]}\n"
                    + "  operator: {users: [rvd\(suffix)-op]}\n")
        })
    }

    deinit {
        daemon.stop()
        TestUsers.remove([dev, viewer, op])
        try? FileManager.default.removeItem(atPath: base)
    }

    @Test func aViewerCannotReadUnchangedLinesOfARootOnlyFileFromAnEditsDiff() throws {
        let path = "\(base)/etc/db.conf"
        try "db_password = s3cret-not-a-runvoyd-secret\nport = 80\n".write(
            toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
        let sed = "\(base)/port.sh"
        try "#!/bin/sh\nsed -i 's/port = 80/port = 8080/' \"$1\"\n".write(
            toFile: sed, atomically: false, encoding: .utf8)
        chmod(sed, 0o755)
        let out = try Harness.run([
            "/usr/sbin/runuser", "-u", dev, "--", "/usr/bin/env", "VISUAL=", "EDITOR=\(sed)", "TMPDIR=/tmp",
            Harness.runvoyctl, "edit", "--socket", daemon.socketPath, "-e", "rootfiles", path,
        ])
        #expect(out.status == 0, "\(out.stderrText)")
        let id = try #require(
            out.stdoutText.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        )
        for user in [viewer, op] {
            let logs = try daemon.ctl(["logs", id], asUser: user)
            #expect(!logs.stdoutText.contains("s3cret"), "\(user) read a line of a root-only file: \(logs.stdoutText)")
            #expect(!logs.stdoutText.contains("port"), "\(user) read a line of a root-only file: \(logs.stdoutText)")
            #expect(logs.status != 0 && logs.stderrText.contains("only to the user who made it"), "\(logs.stderrText)")
            // The record itself (hashes, sizes) stays visible.
            let status = try daemon.ctl(["status", id], asUser: user)
            #expect(status.status == 0 && status.stdoutText.contains("sha256 after"), "\(status.stdoutText)")
        }
        // The editor, who read the whole file, and an administrator see the diff.
        for user in [dev, "root"] {
            let logs = try daemon.ctl(["logs", id], asUser: user == "root" ? nil : user)
            #expect(logs.status == 0 && logs.stdoutText.contains("+port = 8080"), "\(user): \(logs.stderrText)")
        }
        let denied = try Harness.journal(
            ["RUNVOY_EVENT=request_denied", "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_METHOD=logs"],
            until: { $0.count >= 2 })
        #expect(denied.count == 2, "both refusals are audited: \(denied)")
    }
}
