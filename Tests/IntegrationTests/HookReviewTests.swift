import Foundation
import Glibc
import RunvoyKit
import Testing

/// Review of the hooks feature (docs/REVIEW-hooks.md), against a real runvoyd as a real user made for the test
/// (useradd; removed after). Each test FAILS on the code as merged (28355b5).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class HookReviewTests {
    let daemon: DaemonFixture
    let suffix: String
    /// Root-owned (0755), with `conf/` owned by the executor's user (nobody): an `editable` path runvoyd accepts.
    let base: String

    func user(_ name: String) -> String { "rvr\(suffix)-\(name)" }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin rvr\(suffix)-dev")
        let base = try Harness.makeTemporaryDirectory()
        self.base = base
        chmod(base, 0o755)
        mkdir("\(base)/conf", 0o755)
        try "window = closed\n".write(toFile: "\(base)/conf/app.conf", atomically: false, encoding: .utf8)
        try AuthorizationTests.sh("chown nobody:nogroup \(base)/conf \(base)/conf/app.conf")
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                + """
                  windowed:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: ["*"]}
                    commands: any
                    editable: [\(base)/conf]
                    hooks:
                      - {name: change-window, event: pre_exec, command: [/bin/sh, -c, 'echo outside the change window; exit 1'], user: nobody}

                """
        })
    }

    deinit {
        daemon.stop()
        try? AuthorizationTests.sh("userdel \(user("dev"))")
        try? FileManager.default.removeItem(atPath: base)
    }

    /// H1. `edit` (edit_open/edit_save) writes a file as the executor's `run_as` without running its `pre_exec`
    /// hooks: the change-window hook the README shows refuses every command outside the window, yet a developer
    /// rewrites the executor's files (its configuration, the script the next run executes) outside it. The same
    /// hole approvals had (review of approvals, F6, fixed by refusing `edit` there); hooks did not follow.
    @Test func editingOnAnExecutorWhosePreExecHookRefusesIsRefusedToo() throws {
        let path = "\(base)/conf/app.conf"
        // The hook refuses commands on this executor: the window is closed.
        let exec = try daemon.ctl(["exec", "-e", "windowed", "--", "true"], asUser: user("dev"))
        #expect(exec.status != 0 && exec.stderrText.contains("outside the change window"), "\(exec.stderrText)")
        let editor = "\(base)/editor.sh"
        try "#!/bin/sh\necho 'window = ignored' > \"$1\"\n".write(toFile: editor, atomically: false, encoding: .utf8)
        chmod(editor, 0o755)
        let out = try Harness.run([
            "/usr/sbin/runuser", "-u", user("dev"), "--", "/usr/bin/env", "VISUAL=", "EDITOR=\(editor)",
            "TMPDIR=/tmp", Harness.runvoyctl, "edit", "--socket", daemon.socketPath, "-e", "windowed", path,
        ])
        let now = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        #expect(
            now == "window = closed\n",
            "the developer rewrote windowed's file outside the change window, no pre_exec hook asked: \(out.stderrText)"
        )
        #expect(out.status != 0)
    }
}
