import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl edit` against a real runvoyd, as real Unix users made for the test (useradd; removed after): the
/// daemon reads and writes the file as the executor's user, the caller's editor runs on a private copy, and the
/// executor's `editable` paths, links, directories the caller can change, concurrent changes and the role table
/// decide what is refused. Every edit and refusal is audited; the history keeps both hashes and the diff.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class EditTests {
    let daemon: DaemonFixture
    let suffix: String
    /// Root-owned, 0755: `conf` (the service user's, editable), `open` (0777, editable but changeable by anyone),
    /// `other` (not editable) and the editor scripts.
    let base: String
    var dev: String { "rve\(suffix)-dev" }
    var none: String { "rve\(suffix)-none" }
    var service: String { "rve\(suffix)-svc" }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        try TestUsers.add(["dev", "none", "svc"].map { "rve\(suffix)-\($0)" })
        base = try Harness.makeTemporaryDirectory()
        chmod(base, 0o755)
        let base = base
        for name in ["conf", "open", "other"] { mkdir("\(base)/\(name)", 0o755) }
        chmod("\(base)/open", 0o777)
        try AuthorizationTests.sh("chown rve\(suffix)-svc:nogroup \(base)/conf")
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(
                directory: directory,
                extra: """
                      files:
                        run_as: {user: rve\(suffix)-svc}
                        allow:
                          users: ["*"]
                        editable: [\(base)/conf, \(base)/open]
                        commands: any
                    """
            )
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n",
                with: "roles:\n  developer: {users: [rve\(suffix)-dev]}\n"
            )
            .replacingOccurrences(
                of: "max_frame_bytes: 1048576\n", with: "max_frame_bytes: 1048576\n  max_edit_bytes: 64\n")
        })
    }

    deinit {
        daemon.stop()
        TestUsers.remove([dev, none, service])
        try? FileManager.default.removeItem(atPath: base)
    }

    /// A file owned by the service user, with `mode`.
    func file(_ path: String, _ text: String, mode: mode_t = 0o640) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        try AuthorizationTests.sh("chown \(service):nogroup \(path)")
        chmod(path, mode)
    }

    /// An editor: a shell script run as the caller on its copy (`$1`).
    func editor(_ name: String, _ body: String) throws -> String {
        let path = "\(base)/\(name).sh"
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func edit(_ user: String, _ path: String, editor: String) throws -> Harness.Output {
        try Harness.run([
            "/usr/sbin/runuser", "-u", user, "--", "/usr/bin/env", "VISUAL=", "EDITOR=\(editor)", "TMPDIR=/tmp",
            Harness.runvoyctl, "edit", "--socket", daemon.socketPath, "-e", "files", path,
        ])
    }

    func sha256(_ path: String) throws -> String {
        let out = try Harness.run(["/usr/bin/sha256sum", path])
        return String(out.stdoutText.prefix(64))
    }

    func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    func owner(_ path: String) -> (uid: uid_t, mode: mode_t) {
        var info = stat()
        _ = stat(path, &info)
        return (info.st_uid, info.st_mode & 0o7777)
    }

    @Test func anEditRoundTripsAsTheExecutorsUserAndIsAuditedWithBothHashes() throws {
        let path = "\(base)/conf/app.conf"
        try file(path, "port = 80\nname = a\n")
        let before = try sha256(path)
        let serviceUid = owner(path).uid
        let out = try edit(dev, path, editor: try editor("port", "sed -i 's/port = 80/port = 8080/' \"$1\""))
        #expect(out.status == 0, "\(out.stderrText)")
        #expect(text(path) == "port = 8080\nname = a\n")
        #expect(owner(path).uid == serviceUid && owner(path).mode == 0o640)
        let after = try sha256(path)
        let id = try #require(
            out.stdoutText.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        )
        let records = try Harness.journal(["RUNVOY_EVENT=file_edited", "RUNVOY_EXECUTION_ID=\(id)"])
        let record = try #require(records.first)
        #expect(record["RUNVOY_SHA256_BEFORE"] == before && record["RUNVOY_SHA256_AFTER"] == after)
        #expect(record["RUNVOY_PATH"] == path && record["RUNVOY_CALLER_USER"] == dev)
        #expect(record["RUNVOY_CHANGED"] == "true" && record["MESSAGE_ID"] == "8b7c70da326d498da9aaca97e404e7dd")
        let opened = try Harness.journal(["RUNVOY_EVENT=file_opened", "RUNVOY_PATH=\(path)"])
        #expect(opened.first?["RUNVOY_SHA256"] == before)

        let status = try daemon.ctl(["status", "--json", id], asUser: dev)
        #expect(status.stdoutText.contains("\"sha256_after\"") && status.stdoutText.contains(after))
        let human = try daemon.ctl(["status", id], asUser: dev)
        #expect(human.stdoutText.contains("edited file:   \(path)"), "\(human.stdoutText)")
        #expect(human.stdoutText.contains("sha256 before: \(before)") && human.stdoutText.contains(after))
        let list = try daemon.ctl(["list"], asUser: dev)
        #expect(list.stdoutText.contains(String(id.prefix(12))), "\(list.stdoutText)")
        let logs = try daemon.ctl(["logs", id], asUser: dev)
        #expect(logs.stdoutText.contains("-port = 80\n") && logs.stdoutText.contains("+port = 8080\n"))
    }

    @Test func anUnchangedFileIsNotWrittenAndIsRecordedAsUnchanged() throws {
        let path = "\(base)/conf/same.conf"
        try file(path, "x\n")
        var info = stat()
        stat(path, &info)
        let out = try edit(dev, path, editor: try editor("nothing", "true"))
        #expect(out.status == 0 && out.stdoutText.contains("unchanged"), "\(out.stderrText)")
        var now = stat()
        stat(path, &now)
        #expect(now.st_ino == info.st_ino && now.st_mtim.tv_nsec == info.st_mtim.tv_nsec)
        let records = try Harness.journal(["RUNVOY_EVENT=file_edited", "RUNVOY_PATH=\(path)"])
        #expect(records.first?["RUNVOY_CHANGED"] == "false")
    }

    @Test func pathsOutsideEditableLinksAndChangeableDirectoriesAreRefusedAndAudited() throws {
        let change = try editor("change", "echo changed > \"$1\"")
        let outside = "\(base)/other/secret.conf"
        try file(outside, "outside\n")
        let refusedOutside = try edit(dev, outside, editor: change)
        #expect(refusedOutside.status == 125 && refusedOutside.stderrText.contains("does not let you edit"))
        #expect(text(outside) == "outside\n")

        let target = "\(base)/conf/target.conf"
        try file(target, "target\n")
        symlink(target, "\(base)/conf/link.conf")
        let refusedLink = try edit(dev, "\(base)/conf/link.conf", editor: change)
        #expect(
            refusedLink.status == 125 && refusedLink.stderrText.contains("symbolic link"), "\(refusedLink.stderrText)")
        #expect(text(target) == "target\n")

        let changeable = "\(base)/open/app.conf"
        try file(changeable, "open\n")
        let refusedOpen = try edit(dev, changeable, editor: change)
        #expect(
            refusedOpen.status == 125 && refusedOpen.stderrText.contains("directory you can change"),
            "\(refusedOpen.stderrText)")
        #expect(text(changeable) == "open\n")

        let denied = try Harness.journal(
            ["RUNVOY_EVENT=request_denied", "RUNVOY_METHOD=edit_open", "RUNVOY_CALLER_USER=\(dev)"],
            until: { $0.count >= 3 })
        #expect(denied.count >= 3)
    }

    @Test func aFileChangedWhileItIsEditedIsNotOverwritten() throws {
        let path = "\(base)/conf/race.conf"
        try file(path, "one\n", mode: 0o666)
        // The editor, as the caller, changes the real file too (it is world-writable), then edits its copy.
        let racing = try editor("race", "echo other >> \(path); echo mine > \"$1\"")
        let out = try edit(dev, path, editor: racing)
        #expect(out.status == 125 && out.stderrText.contains("conflict"), "\(out.stderrText)")
        #expect(out.stderrText.contains("your edited copy is kept in"))
        #expect(text(path) == "one\nother\n")
        let denied = try Harness.journal([
            "RUNVOY_EVENT=request_denied", "RUNVOY_METHOD=edit_save", "RUNVOY_PATH=\(path)",
        ])
        #expect(denied.first?["RUNVOY_SHA256_NOW"] == (try sha256(path)))
    }

    @Test func aUserWithoutARoleMayNotEdit() throws {
        let path = "\(base)/conf/norole.conf"
        try file(path, "keep\n")
        let out = try edit(none, path, editor: try editor("none", "echo no > \"$1\""))
        #expect(out.status == 125 && out.stderrText.contains("has no runvoy role"), "\(out.stderrText)")
        #expect(text(path) == "keep\n")
    }

    @Test func theProtocolRefusesWhatDoesNotFitAndAdministratorsNeedNoAllow() throws {
        let path = "\(base)/conf/raw.conf"
        try file(path, "raw\n")
        let big = "\(base)/conf/big.conf"
        try file(big, String(repeating: "x", count: 65))
        let connection = try RawConnection(path: daemon.socketPath)
        func request(_ id: Int, _ method: String, _ params: String) throws -> [String: Any] {
            try connection.sendFrame("{\"v\":1,\"id\":\(id),\"method\":\"\(method)\",\"params\":\(params)}")
            return try #require(try connection.readReply(id: id))
        }
        func code(_ reply: [String: Any]) -> String? { (reply["error"] as? [String: Any])?["code"] as? String }
        #expect(code(try request(1, "edit_open", "{\"executor\":\"files\",\"path\":\"\(big)\"}")) == "invalid_argument")
        #expect(
            code(try request(2, "edit_open", "{\"executor\":\"files\",\"path\":\"\(base)/conf\"}"))
                == "invalid_argument")
        #expect(code(try request(3, "edit_open", "{\"executor\":\"nope\",\"path\":\"\(path)\"}")) == "no_such_executor")
        #expect(
            code(try request(4, "edit_open", "{\"executor\":\"files\",\"path\":\"\(base)/conf/..\"}"))
                == "invalid_argument")
        #expect(code(try request(5, "edit_save", "{\"token\":\"nope\",\"base_sha256\":\"x\"}")) == "invalid_state")
        let opened = try #require(
            try request(6, "edit_open", "{\"executor\":\"files\",\"path\":\"\(path)\"}")["result"] as? [String: Any])
        let token = try #require(opened["token"] as? String)
        let sha = try #require(opened["sha256"] as? String)
        #expect(opened["mode"] as? Int == 0o640 && opened["size"] as? Int == 4)
        #expect(
            code(try request(7, "edit_save", "{\"token\":\"\(token)\",\"content\":\"%%%\",\"base_sha256\":\"\(sha)\"}"))
                == "bad_request")
        let tooLarge = Data(String(repeating: "y", count: 65).utf8).base64EncodedString()
        #expect(
            code(
                try request(
                    8, "edit_save", "{\"token\":\"\(token)\",\"content\":\"\(tooLarge)\",\"base_sha256\":\"\(sha)\"}"))
                == "invalid_argument")
        #expect(code(try request(9, "edit_save", "{\"token\":\"\(token)\",\"base_sha256\":\"0000\"}")) == "conflict")
        let content = Data("new\n".utf8).base64EncodedString()
        let saved = try #require(
            try request(
                10, "edit_save", "{\"token\":\"\(token)\",\"content\":\"\(content)\",\"base_sha256\":\"\(sha)\"}")[
                    "result"] as? [String: Any])
        let written = try sha256(path)
        #expect(saved["changed"] as? Bool == true && saved["sha256_after"] as? String == written)
        #expect(text(path) == "new\n")
        // A saved edit's token is spent.
        #expect(
            code(try request(11, "edit_save", "{\"token\":\"\(token)\",\"base_sha256\":\"\(sha)\"}")) == "invalid_state"
        )
    }
}
