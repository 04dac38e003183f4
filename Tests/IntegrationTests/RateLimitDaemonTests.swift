import Foundation
import Glibc
import RunvoyKit
import Testing

/// Rate limits against a real runvoyd, as real Unix users made for the test (useradd; removed after). Rates are
/// set so that a refill is either impossible within the test (N/1d) or certain after the wait the daemon names.
/// Needs root (useradd, runuser) and a journal.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class RateLimitDaemonTests {
    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var alice: String { "rvr\(suffix)-a" }
    var bob: String { "rvr\(suffix)-b" }

    init() throws {
        for user in [alice, bob] {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        }
    }

    deinit {
        for user in [alice, bob] { try? AuthorizationTests.sh("userdel \(user)") }
    }

    /// A daemon where `alice` and `bob` are developers, with `limits` added and an executor `once` that allows
    /// each user one execution a day.
    func daemon(limits: String) throws -> DaemonFixture {
        let (alice, bob) = (alice, bob)
        return try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(
                directory: directory,
                extra: """
                      once:
                        run_as: {user: nobody}
                        environment: {PATH: /usr/bin:/bin}
                        exec_rate: 1/1d
                        locks: [once-lock]
                        allow: {users: ["*"]}
                        commands: any
                      holder:
                        run_as: {user: nobody}
                        environment: {PATH: /usr/bin:/bin}
                        locks: [once-lock]
                        allow: {users: ["*"]}
                        commands: any
                    """
            )
            .replacingOccurrences(
                of: "  max_connections: 4096\n",
                with: "  max_connections: 4096\n" + limits.split(separator: "\n").map { "  \($0)\n" }.joined()
            )
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n",
                with: "roles:\n  developer: {users: [\(alice), \(bob)]}\n")
        })
    }

    /// Sends `list` on one connection until it is refused, waits as long as the refusal says, and asks again.
    static let prober = #"""
        import json, socket, struct, sys, time
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
        def call(i):
            b = json.dumps({"v": 1, "id": i, "method": "list"}).encode()
            s.sendall(struct.pack(">I", len(b)) + b)
            h = b""
            while len(h) < 4: h += s.recv(4 - len(h))
            (n,) = struct.unpack(">I", h); b = b""
            while len(b) < n: b += s.recv(n - len(b))
            return json.loads(b)
        allowed, refusal = 0, None
        for i in range(5000):
            f = call(i)
            if "error" in f:
                refusal = f["error"]; break
            allowed += 1
        time.sleep(refusal["data"]["retry_after_ms"] / 1000)
        after = call(9999)
        print(json.dumps({"allowed": allowed, "refusal": refusal, "after": "result" in after}), flush=True)
        """#

    /// A user who makes requests faster than its rate is refused with `rate_limited` and `retry_after_ms`, and is
    /// served again once that much time has passed.
    @Test func requestsBeyondTheRateAreRefusedUntilTheNamedWaitIsOver() throws {
        // 20 per 2 s: one token every 100 ms; thousands of requests take far longer than the burst lasts.
        let daemon = try daemon(limits: "request_rate: 20/2s")
        defer { daemon.stop() }
        let script = daemon.directory + "/probe.py"
        try Self.prober.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(daemon.directory, 0o755)
        chmod(script, 0o644)
        let output = try Harness.run(
            ["/usr/sbin/runuser", "-u", alice, "--", "/usr/bin/python3", script, daemon.socketPath])
        #expect(output.status == 0, "\(output.stderrText)")
        let result = try #require(
            try JSONSerialization.jsonObject(with: Data(output.stdoutText.utf8)) as? [String: Any],
            "\(output.stdoutText)")
        let refusal = try #require(result["refusal"] as? [String: Any])
        #expect(refusal["code"] as? String == "rate_limited")
        #expect((refusal["message"] as? String)?.contains("at most 20 per 2s (limits.request_rate)") == true)
        let wait = try #require((refusal["data"] as? [String: Any])?["retry_after_ms"] as? Int)
        #expect((1...100).contains(wait), "\(wait)")
        #expect((result["allowed"] as? Int ?? 0) >= 20)
        #expect(result["after"] as? Bool == true)
        // Root (an administrator) is not held to the default rate.
        for _ in 0..<30 { #expect(try daemon.ctl(["list"]).status == 0) }
    }

    /// An executor's `exec_rate` holds each user on its own, administrators too; runvoyctl says when to try again.
    @Test func anExecutorsRateHoldsEachUserAndAdministrators() throws {
        let daemon = try daemon(limits: "request_rate: 6000/1m")
        defer { daemon.stop() }
        // Refused for another reason (its lock is held), an execution gives its token back.
        let held = try daemon.ctl(["exec", "-e", "holder", "--detach", "--", "sleep", "60"], asUser: bob)
        let holder = held.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let busy = try daemon.ctl(["exec", "--no-wait", "-e", "once", "--", "true"], asUser: alice)
        #expect(busy.status == 125 && busy.stderrText.contains("[busy]"), "\(busy.stderrText)")
        #expect(try daemon.ctl(["kill", "--signal", "KILL", holder]).status == 0)
        let free = try Harness.waitUntil(seconds: 30) {
            try daemon.ctl(["locks"]).stdoutText.contains("once-lock: free")
        }
        #expect(free)
        #expect(try daemon.ctl(["exec", "-e", "once", "--", "true"], asUser: alice).status == 0)
        let again = try daemon.ctl(["exec", "-e", "once", "--", "true"], asUser: alice)
        #expect(again.status == 125)
        #expect(
            again.stderrText.contains(
                "too many executions on 'once' from \(alice): at most 1 per 1d (executors.once.exec_rate); try again in "
            ),
            "\(again.stderrText)")
        #expect(again.stderrText.contains("[rate_limited]"))
        // Other executors, and other users, are not held up.
        #expect(try daemon.ctl(["exec", "--", "true"], asUser: alice).status == 0)
        #expect(try daemon.ctl(["exec", "-e", "once", "--", "true"], asUser: bob).status == 0)
        #expect(try daemon.ctl(["exec", "-e", "once", "--", "true"]).status == 0)
        let root = try daemon.ctl(["exec", "-e", "once", "--", "true"])
        #expect(root.status == 125 && root.stderrText.contains("[rate_limited]"), "\(root.stderrText)")
    }

    /// Rates by user and by role: the default holds a developer, a user's own entry lifts it, and administrators
    /// are held only through an entry for their role.
    @Test func ratesByUserAndRole() throws {
        let daemon = try daemon(
            limits: """
                request_rate: 2/1d
                rates:
                  users:
                    \(bob): {request_rate: unlimited}
                  roles:
                    admin: {exec_rate: 1/1d}
                """)
        defer { daemon.stop() }
        for _ in 0..<2 { #expect(try daemon.ctl(["list"], asUser: alice).status == 0) }
        let third = try daemon.ctl(["list"], asUser: alice)
        #expect(third.status == 125)
        #expect(
            third.stderrText.contains("at most 2 per 1d (limits.request_rate); try again in "), "\(third.stderrText)")
        for _ in 0..<5 { #expect(try daemon.ctl(["list"], asUser: bob).status == 0) }
        for _ in 0..<5 { #expect(try daemon.ctl(["list"]).status == 0) }
        #expect(try daemon.ctl(["exec", "--", "true"]).status == 0)
        let second = try daemon.ctl(["exec", "--", "true"])
        #expect(second.status == 125)
        #expect(second.stderrText.contains("(limits.rates.roles.admin.exec_rate)"), "\(second.stderrText)")
    }
}
