import Foundation
import Glibc
import RunvoyKit
import Testing

/// Sandboxed executors where transient units cannot be started (the test daemon runs without systemd as PID 1,
/// over a private journal): the daemon starts, says which executors cannot be honoured, and refuses their
/// executions with `spawn_failed`, reason `sandbox_unavailable`, audited; the command never runs unsandboxed.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class SandboxRefusalTests {
    let daemon: DaemonFixture

    init() throws {
        daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(
                directory: $0,
                extra: [
                    "  boxed:", "    run_as: {user: nobody}", "    environment: {PATH: /usr/bin:/bin}",
                    "    allow: {users: [\"*\"]}", "    commands: any",
                    "    sandbox: {ProtectSystem: strict, PrivateTmp: true, NoNewPrivileges: true}",
                    "  hidden:", "    run_as: {user: nobody}", "    allow: {users: [root]}", "    commands: any",
                    "    sandbox: {PrivateTmp: true}",
                ].joined(separator: "\n"))
        })
    }

    deinit { daemon.stop() }

    @Test func aSandboxedExecutionIsRefusedNotRunWithoutItsSandbox() throws {
        let marker = daemon.directory + "/ran"
        let out = try daemon.ctl(["exec", "-e", "boxed", "--", "/usr/bin/touch", marker])
        #expect(out.status == 126, "\(out.stderrText)")  // spawn_failed, as runvoyctl exits for it
        #expect(out.stderrText.contains("spawn_failed"), "\(out.stderrText)")
        #expect(out.stderrText.contains("sandboxed"), "\(out.stderrText)")
        #expect(access(marker, F_OK) != 0, "the command ran without its sandbox")
        let id = try #require(try Escapees.lastID(daemon))
        let finished = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_finished",
        ])
        #expect(finished.first?["RUNVOY_REASON"]?.contains("spawn_failed") == true, "\(finished)")
        // Other executors are not affected.
        #expect(try daemon.ctl(["exec", "-q", "--", "true"]).status == 0)
    }

    @Test func theRefusalCarriesItsReason() throws {
        let client = try RunvoyClient(socketPath: daemon.socketPath)
        do throws(ClientError) {
            _ = try client.call(
                .exec, params: ExecParams(argv: ["true"], executor: "boxed"), result: ExitEvent.self)
            Issue.record("a sandboxed execution was not refused")
        } catch {
            #expect(error.remote?.code == .spawnFailed, "\(error)")
            #expect(error.remote?.reason == "sandbox_unavailable", "\(error)")
        }
    }

    @Test func startUpWhoamiAndHealthSayWhy() throws {
        #expect(daemon.log.contains("sandboxed executors cannot be honoured"), "\(daemon.log)")
        let who = try daemon.ctl(["whoami", "--json"])
        #expect(who.stdoutText.contains("sandboxed executors refused (boxed, hidden): "), "\(who.stdoutText)")
        let health = try daemon.ctl(["health"])
        #expect(health.stdoutText.contains("sandboxed executors refused (boxed, hidden): "), "\(health.stdoutText)")
    }

    /// Review of issue 13 item 5: `health` named every sandboxed executor, and the system bus's error text, to
    /// callers of any role. Now only the executors the caller may use, and why only to administrators.
    @Test func healthNamesOnlyTheCallersSandboxedExecutorsAndWhyOnlyToAdministrators() throws {
        let user = "rvsb\(String(UInt32.random(in: 0..<0xFFFF), radix: 16))"
        try TestUsers.add([user])
        defer { TestUsers.remove([user]) }
        for method in [["health"], ["whoami", "--json"]] {
            let out = try daemon.ctl(method, asUser: user).stdoutText
            #expect(out.contains("sandboxed executors refused (boxed)"), "\(method): \(out)")
            #expect(!out.contains("hidden") && !out.contains("refused (boxed):"), "\(method): \(out)")
        }
    }
}
