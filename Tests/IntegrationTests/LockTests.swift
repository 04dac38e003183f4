import Foundation
import Glibc
import RunvoyKit
import Testing

/// Named locks against a real runvoyd, as real Unix users made for the test (useradd; removed after): executors
/// that share an exclusive lock never run at once, whoever asks; shared holders coexist and keep an exclusive one
/// out; a lock is given back however its execution ends; `runvoyctl locks` shows it all to holders of a role.
/// Needs root (useradd, runuser) and a journal.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class LockTests {
    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var alice: String { "rvl\(suffix)-a" }
    var bob: String { "rvl\(suffix)-b" }
    var none: String { "rvl\(suffix)-n" }
    var oscar: String { "rvl\(suffix)-o" }

    init() throws {
        for user in [alice, bob, none, oscar] {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        }
    }

    deinit {
        for user in [alice, bob, none, oscar] { try? AuthorizationTests.sh("userdel \(user)") }
    }

    static func executor(
        _ name: String, locks: String, timeout: String = "10m", allow: String = #"["*"]"#
    ) -> String {
        """
          \(name):
            run_as: {user: nobody}
            environment: {PATH: /usr/bin:/bin}
            timeout: \(timeout)
            locks: \(locks)
            allow: {users: \(allow)}
            commands: any
        """
    }

    /// A daemon where `alice` and `bob` are developers, `oscar` an operator and `none` has no role, with
    /// executors that take locks (and with `ops`, one only for `oscar`).
    func daemon(ops: Bool = false) throws -> DaemonFixture {
        let (alice, bob, oscar) = (alice, bob, oscar)
        let only = ops ? [Self.executor("ops", locks: "[terraform-prod]", allow: "[\(oscar)]")] : []
        let extra =
            (only + [
                Self.executor("tf-a", locks: "[terraform-prod]"),
                Self.executor("tf-b", locks: "[terraform-prod, other]"),
                Self.executor("read-1", locks: "[{name: db, shared: true}]"),
                Self.executor("read-2", locks: "[{name: db, shared: true}]"), Self.executor("write", locks: "[db]"),
                Self.executor("brief", locks: "[brief]", timeout: "1s"), Self.executor("brief-too", locks: "[brief]"),
            ]).joined(separator: "\n")
        return try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory, extra: extra)
                .replacingOccurrences(
                    of: "roles:\n  developer: {users: [\"*\"]}\n",
                    with: "roles:\n  developer: {users: [\(alice), \(bob)]}\n  operator: {users: [\(oscar)]}\n")
        })
    }

    func locks(_ daemon: DaemonFixture, as user: String? = nil) throws -> [LockInfo] {
        let output = try daemon.ctl(["locks", "--json"], asUser: user)
        #expect(output.status == 0, "\(output.stderrText)")
        return try JSONDecoder().decode(LocksResult.self, from: Data(output.stdoutText.utf8)).locks
    }

    func lock(_ name: String, _ daemon: DaemonFixture) throws -> LockInfo? {
        try locks(daemon).first { $0.name == name }
    }

    func detached(
        _ daemon: DaemonFixture, _ executor: String, as user: String, _ argv: [String] = ["sleep", "60"]
    )
        throws -> String
    {
        let started = try daemon.ctl(["exec", "-e", executor, "--detach", "--"] + argv, asUser: user)
        #expect(started.status == 0, "\(started.stderrText)")
        return started.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func waitUntilFree(_ name: String, _ daemon: DaemonFixture) throws -> Bool {
        try Harness.waitUntil(seconds: 30) { try lock(name, daemon)?.mode == "free" }
    }

    /// Two users on two executors that share an exclusive lock: with `--no-wait` the second is refused with `busy`
    /// (root too), naming the holder to whoever may see it, until the holder ends; then it runs.
    @Test func executorsSharingAnExclusiveLockNeverRunAtOnce() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let id = try detached(daemon, "tf-a", as: alice)
        for user in [bob, nil] {
            let second = try daemon.ctl(["exec", "--no-wait", "-e", "tf-b", "--", "true"], asUser: user)
            #expect(second.status == 125, "\(user ?? "root") ran beside the holder")
            #expect(second.stderrText.contains("lock 'terraform-prod'"), "\(second.stderrText)")
            if user == nil {
                #expect(second.stderrText.contains("\(id) by \(alice) on 'tf-a'"), "\(second.stderrText)")
            } else {
                // A developer may not see another user's executions (as in `locks`): held, but not by whom.
                #expect(second.stderrText.contains("is held by another user's execution for"), "\(second.stderrText)")
                #expect(!second.stderrText.contains(id) && !second.stderrText.contains(alice), "\(second.stderrText)")
            }
            #expect(second.stderrText.contains("[busy]"), "\(second.stderrText)")
        }
        // tf-b's other lock was not taken by the refused attempts: all or nothing.
        #expect(try lock("other", daemon)?.mode == "free")
        let held = try #require(try lock("terraform-prod", daemon))
        #expect(held.mode == "exclusive" && held.executors == ["tf-a", "tf-b"])
        #expect(held.holders.map(\.executionId) == [id] && held.holders.map(\.user) == [alice])
        #expect(held.holders.first?.sinceMs != nil && held.holders.first?.shared == false)
        #expect(try daemon.ctl(["kill", "--signal", "KILL", id]).status == 0)
        #expect(try waitUntilFree("terraform-prod", daemon))
        let after = try daemon.ctl(["exec", "-e", "tf-b", "--", "true"], asUser: bob)
        #expect(after.status == 0, "\(after.stderrText)")
    }

    /// An execution whose lock is held waits in the queue (runvoyctl says who holds it, `locks` lists it as a
    /// waiter) and runs once the holder ends.
    @Test func anExecutionWhoseLockIsHeldWaitsAndThenRuns() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let id = try detached(daemon, "tf-a", as: alice)
        let waiter = try daemon.startCtl(["exec", "-e", "tf-b", "--", "echo", "ran"])
        #expect(try Harness.waitUntil(seconds: 30) { waiter.stderr.contains("queued:") }, "\(waiter.stderr)")
        #expect(waiter.stderr.contains(id.prefix(8)), "the holder is named: \(waiter.stderr)")
        #expect(try Harness.waitUntil(seconds: 30) { try lock("terraform-prod", daemon)?.waiters.count == 1 })
        #expect(waiter.process.status == nil, "it waits while the lock is held")
        #expect(try daemon.ctl(["kill", "--signal", "KILL", id]).status == 0)
        #expect(waiter.process.wait(seconds: 60) == 0, "\(waiter.stderr)")
        #expect(waiter.stdout.contains("ran"))
        #expect(try waitUntilFree("terraform-prod", daemon))
    }

    /// Shared holders coexist; an exclusive claim waits for all of them (refused naming those it may see), and gets the lock
    /// once they have ended.
    @Test func sharedHoldersCoexistAndKeepAnExclusiveOneOut() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let first = try detached(daemon, "read-1", as: alice)
        let second = try detached(daemon, "read-2", as: bob)
        let third = try detached(daemon, "read-1", as: bob)
        let shared = try #require(try lock("db", daemon))
        #expect(shared.mode == "shared")
        #expect(Set(shared.holders.compactMap(\.executionId)) == [first, second, third])
        #expect(shared.holders.allSatisfy { $0.shared })
        let writer = try daemon.ctl(["exec", "--no-wait", "-e", "write", "--", "true"], asUser: alice)
        #expect(writer.status == 125)
        #expect(writer.stderrText.contains("lock 'db' (needed exclusive"), "\(writer.stderrText)")
        // alice (a developer) sees her own holder named, bob's two only as another user's.
        #expect(writer.stderrText.contains("\(first) by \(alice)"), "\(writer.stderrText)")
        for id in [second, third] { #expect(!writer.stderrText.contains(id), "\(writer.stderrText)") }
        #expect(
            writer.stderrText.components(separatedBy: "another user's execution").count == 3, "\(writer.stderrText)")
        for id in [first, second] { #expect(try daemon.ctl(["kill", "--signal", "KILL", id]).status == 0) }
        // One shared holder left: still not for the writer.
        #expect(try Harness.waitUntil(seconds: 30) { try lock("db", daemon)?.holders.count == 1 })
        #expect(try daemon.ctl(["exec", "--no-wait", "-e", "write", "--", "true"], asUser: alice).status == 125)
        #expect(try daemon.ctl(["kill", "--signal", "KILL", third]).status == 0)
        #expect(try waitUntilFree("db", daemon))
        let after = try daemon.ctl(["exec", "-e", "write", "--", "true"], asUser: alice)
        #expect(after.status == 0, "\(after.stderrText)")
    }

    /// A lock is given back when its execution times out, and when its launch fails.
    @Test func aLockIsGivenBackAfterATimeoutAndAFailedLaunch() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let id = try detached(daemon, "brief", as: alice)
        #expect(try Harness.waitUntil(seconds: 30) { try daemon.ctl(["status", id]).stdoutText.contains("timed_out") })
        #expect(try waitUntilFree("brief", daemon))
        let missing = try daemon.ctl(["exec", "-e", "brief-too", "--", "/no/such/command"], asUser: bob)
        #expect(missing.status == 127, "\(missing.stderrText)")
        #expect(try lock("brief", daemon)?.mode == "free")
        let after = try daemon.ctl(["exec", "-e", "brief-too", "--", "true"], asUser: bob)
        #expect(after.status == 0, "\(after.stderrText)")
    }

    /// `locks` needs a role (`executors_read`): a member of the socket's group with none is refused, a developer
    /// sees every lock with its holders; the human output names them too.
    @Test func locksNeedsARoleAndShowsHoldersAndFreeLocks() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let id = try detached(daemon, "tf-a", as: alice)
        let refused = try daemon.ctl(["locks"], asUser: none)
        #expect(refused.status == 125)
        #expect(refused.stderrText.contains("has no runvoy role"), "\(refused.stderrText)")
        let seen = try locks(daemon, as: bob)
        #expect(seen.map(\.name) == ["brief", "db", "other", "terraform-prod"])
        #expect(seen.first { $0.name == "db" }?.executors == ["read-1", "read-2", "write"])
        let human = try daemon.ctl(["locks"], asUser: bob)
        #expect(human.status == 0)
        #expect(human.stdoutText.contains("terraform-prod: exclusive (executors: tf-a, tf-b)"), "\(human.stdoutText)")
        // Another developer's execution, to a developer (no `view_all`): held, for how long, not whose.
        #expect(human.stdoutText.contains("  held by another user's execution on tf-a for "), "\(human.stdoutText)")
        #expect(!human.stdoutText.contains(id), "\(human.stdoutText)")
        let own = try daemon.ctl(["locks"], asUser: alice)
        #expect(own.stdoutText.contains("  held by \(id) \(alice) on tf-a for "), "\(own.stdoutText)")
        #expect(human.stdoutText.contains("db: free"), "\(human.stdoutText)")
        #expect(try daemon.ctl(["kill", "--signal", "KILL", id]).status == 0)
    }

    /// A developer sees that an operator's execution holds a lock, and for how long, but not its id, its user nor
    /// an executor the developer may not use; neither in `locks` nor in the `queued` events of its own waiting
    /// execution. The operator and root see it all. (Before, every caller with a role saw all of it.)
    @Test func anotherUsersExecutionIsNamedOnlyToWhoMaySeeIt() throws {
        let daemon = try daemon(ops: true)
        defer { daemon.stop() }
        let id = try detached(daemon, "ops", as: oscar)
        let seen = try #require(try locks(daemon, as: bob).first { $0.name == "terraform-prod" })
        #expect(seen.mode == "exclusive" && seen.executors == ["tf-a", "tf-b"])
        let holder = try #require(seen.holders.first)
        #expect(holder.executionId == nil && holder.uid == nil && holder.user == "another user", "\(holder)")
        #expect(holder.executor == nil && holder.sinceMs != nil)
        let raw = try daemon.ctl(["locks", "--json"], asUser: bob).stdoutText
        #expect(!raw.contains(id) && !raw.contains(oscar) && !raw.contains("\"ops\""), "\(raw)")
        for user in [oscar, nil] {
            let full = try #require(try locks(daemon, as: user).first { $0.name == "terraform-prod" })
            #expect(full.holders.first?.executionId == id && full.holders.first?.user == oscar)
            #expect(full.holders.first?.executor == "ops" && full.executors == ["ops", "tf-a", "tf-b"])
        }
        // bob's own waiting execution hears that the lock is held, and for how long, but not by whom.
        let waiter = try QueueTests.Client(daemon, bob, ["exec", "-e", "tf-b", "--", "true"])
        #expect(Harness.waitUntil(seconds: 30) { waiter.stderr.contains("queued:") }, "\(waiter.stderr)")
        #expect(Harness.waitUntil(seconds: 30) { waiter.stderr.contains("another user's execution for") })
        #expect(!waiter.stderr.contains(id.prefix(8) + "…") && !waiter.stderr.contains(oscar), "\(waiter.stderr)")
        let listed = try #require(try locks(daemon, as: bob).first { $0.name == "terraform-prod" })
        #expect(listed.waiters.first?.user == bob && listed.waiters.first?.executor == "tf-b")
        #expect(try daemon.ctl(["kill", "--signal", "KILL", id]).status == 0)
        #expect(waiter.finish() == 0, "\(waiter.stderr)")
    }
}
