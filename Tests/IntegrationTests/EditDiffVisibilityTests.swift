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

    /// Edits `path` on `rootfiles` as the developer with `editor` as $EDITOR; the edit record's id.
    func editAsDeveloper(_ path: String, editor: String) throws -> String {
        let out = try Harness.run([
            "/usr/sbin/runuser", "-u", dev, "--", "/usr/bin/env", "VISUAL=", "EDITOR=\(editor)", "TMPDIR=/tmp",
            Harness.runvoyctl, "edit", "--socket", daemon.socketPath, "-e", "rootfiles", path,
        ])
        #expect(out.status == 0, "\(out.stderrText)")
        return try #require(
            out.stdoutText.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        )
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
        let id = try editAsDeveloper(path, editor: sed)
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

    /// Review of issue 16 (lower finding): `status` and `list` gave every viewer the SHA-256 of a root-only file
    /// before and after an edit, with which anyone can test guesses of its content offline (a file that holds one
    /// short secret). They go only to who may read the edit (its editor, administrators); others see `changed`.
    @Test func theHashesOfAnEditedFileAreShownOnlyToWhoMayReadTheEdit() throws {
        let path = "\(base)/etc/pin"
        try "4711\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
        let script = "\(base)/pin.sh"
        try "#!/bin/sh\necho 4712 > \"$1\"\n".write(toFile: script, atomically: false, encoding: .utf8)
        chmod(script, 0o755)
        let id = try editAsDeveloper(path, editor: script)
        func edits(_ user: String?) throws -> [[String: Any]] {
            let status = try daemon.ctl(["status", "--json", id], asUser: user)
            let listed = try daemon.ctl(["list", "--json", "--limit", "5"], asUser: user)
            let one = try JSONSerialization.jsonObject(with: status.stdout) as? [String: Any]
            let all =
                (try JSONSerialization.jsonObject(with: listed.stdout) as? [String: Any])?["executions"]
                as? [[String: Any]] ?? []
            return ([one].compactMap { $0 } + all.filter { $0["execution_id"] as? String == id })
                .compactMap { $0["edit"] as? [String: Any] }
        }
        for user in [viewer, op] {
            let seen = try edits(user)
            #expect(seen.count == 2, "\(user): \(seen)")
            for edit in seen {
                #expect(edit["sha256_before"] is NSNull && edit["sha256_after"] is NSNull, "\(user): \(edit)")
                #expect(edit["changed"] as? Bool == true && edit["path"] as? String == path, "\(user): \(edit)")
            }
            let status = try daemon.ctl(["status", id], asUser: user)
            #expect(status.stdoutText.contains("shown to its editor and administrators"), "\(status.stdoutText)")
        }
        for user in [dev, nil] {
            let seen = try edits(user)
            #expect(seen.count == 2, "\(user ?? "root"): \(seen)")
            for edit in seen {
                #expect((edit["sha256_before"] as? String)?.count == 64, "\(user ?? "root"): \(edit)")
                #expect((edit["sha256_after"] as? String)?.count == 64, "\(user ?? "root"): \(edit)")
            }
        }
    }

    /// The hashes of `id` as an administrator sees them (root): what no one else may learn.
    func hashes(of id: String) throws -> [String] {
        let status = try daemon.ctl(["status", "--json", id])
        let info = try #require(try JSONSerialization.jsonObject(with: status.stdout) as? [String: Any])
        let edit = try #require(info["edit"] as? [String: Any])
        let hashes = [edit["sha256_before"], edit["sha256_after"]].compactMap { $0 as? String }
        #expect(hashes.count == 2 && hashes.allSatisfy { $0.count == 64 }, "\(edit)")
        return hashes
    }

    /// Writes a root-only one-line file and has the developer change it; its path and the edit record's id.
    func editAPin(_ name: String) throws -> (path: String, id: String) {
        let path = "\(base)/etc/\(name)"
        try "4711\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
        let script = "\(base)/\(name).sh"
        try "#!/bin/sh\necho 4712 > \"$1\"\n".write(toFile: script, atomically: false, encoding: .utf8)
        chmod(script, 0o755)
        return (path, try editAsDeveloper(path, editor: script))
    }

    /// Review 16b, F1: `export` (every execution the caller may see, "exactly as `list --json` prints them") sends
    /// the history's records as they are stored, without `shown`: a viewer or operator gets an edit's SHA-256
    /// hashes, which `status` and `list` withhold from them.
    @Test func anExportGivesAViewerNoHashesOfAnEdit() throws {
        let (_, id) = try editAPin("pin-export")
        let hashes = try hashes(of: id)
        for user in [viewer, op] {
            let out = try daemon.ctl(["export", "--format", "jsonl"], asUser: user)
            #expect(out.status == 0, "\(user): \(out.stderrText)")
            let lines = out.stdoutText.split(separator: "\n").map(String.init)
            let line = lines.first { $0.contains(id) }
            #expect(line != nil, "\(user) does not see the edit record in the export")
            for hash in hashes {
                #expect(!out.stdoutText.contains(hash), "\(user) got a hash of a root-only file: \(line ?? "")")
            }
        }
        // The editor and an administrator still get them.
        for user in [dev, nil] {
            let out = try daemon.ctl(["export", "--format", "jsonl"], asUser: user)
            #expect(hashes.allSatisfy { out.stdoutText.contains($0) }, "\(user ?? "root"): \(out.stderrText)")
        }
    }

    /// Review 16b, F2: `trace` gives whoever may see an execution its journal records, and the edit's
    /// `file_edited` record carries RUNVOY_SHA256_BEFORE and RUNVOY_SHA256_AFTER: a viewer or operator gets the
    /// hashes `status` withholds. (By request id, which runvoyctl numbers from 1, nothing of the edit comes back:
    /// only exec records carry RUNVOY_REQUEST_ID, and `file_opened`, with RUNVOY_SHA256 and RUNVOY_SIZE, has no
    /// execution id. That part passes on main and guards against either changing.)
    @Test func aTraceGivesAViewerNoHashesOfAnEdit() throws {
        let (_, id) = try editAPin("pin-trace")
        let hashes = try hashes(of: id)
        _ = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)"])
        for user in [viewer, op] {
            let byID = try daemon.ctl(["trace", "--json", id], asUser: user)
            #expect(byID.status == 0, "\(user): \(byID.stderrText)")
            for hash in hashes {
                #expect(!byID.stdoutText.contains(hash), "\(user) got a hash by execution id: \(byID.stdoutText)")
            }
            for request in 1...4 {
                let byRequest = try daemon.ctl(["trace", "--json", "--request", String(request)], asUser: user)
                for hash in hashes {
                    #expect(
                        !byRequest.stdoutText.contains(hash),
                        "\(user) got a hash by request id \(request): \(byRequest.stdoutText)")
                }
            }
        }
    }
}
