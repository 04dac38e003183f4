import Foundation
import Glibc
import RunvoyKit
import Testing

/// A journal that stops reading (journald stopped) must not freeze runvoyd: requests that need no audit record
/// are answered, executions are refused with `audit_unavailable` after `audit.write_timeout`, STATUS= says the
/// audit path is stalled, and once journald reads again runvoyd serves as before, without a restart.
///
/// The daemon writes to a journald of its own (a journal namespace, `RUNVOYD_JOURNAL_SOCKET`), so stopping it
/// leaves the journald the other suites write to alone.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class JournalStallTests {
    let namespace = "runvoystall\(getpid())"
    let directory: String
    let journald: ChildProcess
    var socketPath: String { "/run/systemd/journal.\(namespace)/socket" }

    init() throws {
        directory = try Harness.makeTemporaryDirectory()
        let runtime = "/run/systemd/journal.\(namespace)"
        mkdir(runtime, 0o755)
        // A tmpfs of its own, so nothing is left behind in /run (the test runs in a private mount namespace).
        _ = try Harness.run(["/usr/bin/mount", "-t", "tmpfs", "tmpfs", runtime])
        journald = try ChildProcess(["/lib/systemd/systemd-journald", namespace])
        let deadline = Date().addingTimeInterval(20)
        while access(socketPath, F_OK) != 0 {
            guard Date() < deadline, journald.isRunning else {
                throw HarnessError("the namespace journald did not start")
            }
            usleep(20_000)
        }
    }

    deinit {
        journald.signal(SIGCONT)
        journald.signal(SIGTERM)
        if journald.wait(seconds: 10) == nil {
            journald.signal(SIGKILL)
            journald.wait()
        }
        _ = try? Harness.run(["/usr/bin/umount", "-l", "/run/systemd/journal.\(namespace)"])
        rmdir("/run/systemd/journal.\(namespace)")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Fills the stopped journald's socket queue, as a busy system would while it does not read: from now on every
    /// datagram to it waits.
    func fillJournalQueue() throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: socketPath.utf8)
            raw[socketPath.utf8.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw HarnessError("connect to the namespace journald: \(errno)") }
        var entry = Array("MESSAGE=filler\nSYSLOG_IDENTIFIER=runvoy-test\n".utf8)
        for _ in 0..<100_000 {
            let sent = entry.withUnsafeMutableBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if sent < 0 {
                if errno == EAGAIN { return }
                throw HarnessError("filling the journal queue: errno \(errno)")
            }
        }
        throw HarnessError("the journal's queue never filled")
    }

    @Test func aStalledJournalRefusesExecutionsButNothingElseAndRecovers() throws {
        let notify = try NotifyCollector(path: directory + "/notify")
        defer { notify.close() }
        let daemon = try DaemonFixture(
            config: {
                DaemonFixture.standardConfig(directory: $0)
                    .replacingOccurrences(of: "  fail_closed: true", with: "  fail_closed: true\n  write_timeout: 2s")
            },
            environment: ["RUNVOYD_JOURNAL_SOCKET": socketPath, "NOTIFY_SOCKET": directory + "/notify"])
        defer { daemon.stop() }
        try notify.waitFor(match: { $0.contains("READY=1") })
        let before = try daemon.ctl(["exec", "-q", "--", "true"], timeout: 20)
        #expect(before.status == 0, "\(before.stderrText)")

        journald.signal(SIGSTOP)
        defer { journald.signal(SIGCONT) }
        try fillJournalQueue()

        // Several executions wait on their audit records at once (more than there are cores and event loops).
        let waiting = try (0..<6).map { _ in try daemon.startCtl(["exec", "-q", "--", "true"]) }
        // Meanwhile everything that writes no audit record answers (runvoyctl's own receive timeout is 10 s).
        for command in [["whoami"], ["list"], ["whoami"]] {
            let answer = try daemon.ctl(command, timeout: 10)
            #expect(answer.status == 0, "\(command): \(answer.stderrText)")
        }
        for ctl in waiting {
            let status = ctl.process.wait(seconds: 60)
            #expect(status == 125, "\(ctl.stderr)")
            #expect(ctl.stderr.contains("audit_unavailable"), "\(ctl.stderr)")
        }
        try notify.waitFor(match: { $0.hasPrefix("STATUS=AUDIT PATH STALLED") })
        // Nothing ran: every refused execution is in the history as never started.
        let listed = try daemon.ctl(["list", "--json"], timeout: 10)
        #expect(listed.stdoutText.components(separatedBy: "audit_unavailable").count - 1 == waiting.count)

        journald.signal(SIGCONT)
        // STATUS= says serving again once the journal takes records (the refusals and log lines first).
        try notify.waitFor(
            after: { $0.contains("STATUS=AUDIT PATH STALLED") }, match: { $0.hasPrefix("STATUS=serving") })
        let after = try daemon.ctl(["exec", "--", "echo", "back"], timeout: 20)
        #expect(after.status == 0, "\(after.stderrText)")
        #expect(after.stdoutText == "back\n")
        let id = try #require(ExecTests.executionID(after.stderrText))
        let entries = try Harness.journal(
            ["--namespace=\(namespace)", "RUNVOY_EXECUTION_ID=\(id)"], until: { $0.count >= 3 }, seconds: 20)
        #expect(entries.compactMap { $0["RUNVOY_EVENT"] } == ["decision", "execution_started", "execution_finished"])
    }

    /// `health` says the journal fails (exit 2) while it takes no records, and is healthy again once it does.
    @Test func healthReportsAStalledJournal() throws {
        let daemon = try DaemonFixture(environment: ["RUNVOYD_JOURNAL_SOCKET": socketPath])
        defer { daemon.stop() }
        #expect(try daemon.ctl(["health"], timeout: 20).status == 0)
        journald.signal(SIGSTOP)
        defer { journald.signal(SIGCONT) }
        try fillJournalQueue()
        // The journal probe runs at most every 5 s (HealthProbes): the stall shows within that.
        var stalled = try daemon.ctl(["health", "--json"], timeout: 20)
        _ = try Harness.waitUntil(seconds: 30) {
            stalled = try daemon.ctl(["health", "--json"], timeout: 20)
            return stalled.status == 2
        }
        #expect(stalled.status == 2)
        let health = try JSONDecoder().decode(HealthResult.self, from: stalled.stdout)
        let journal = health.checks.first { $0.name == "journal" }
        #expect(journal?.status == .failing && health.status == .failing, "\(String(describing: journal))")
        journald.signal(SIGCONT)
        #expect(try Harness.waitUntil { try daemon.ctl(["health"], timeout: 20).status == 0 })
    }

    @Test func recordsLargerThanADatagramReachTheJournal() throws {
        let daemon = try DaemonFixture(environment: ["RUNVOYD_JOURNAL_SOCKET": socketPath])
        defer { daemon.stop() }
        // An argv far larger than one datagram: the record goes through a sealed memfd.
        let big = (0..<8).map { String(repeating: Character(String($0)), count: 100_000) }
        let out = try daemon.ctl(["exec", "--", "true"] + big, timeout: 60)
        #expect(out.status == 0, "\(out.stderrText.prefix(500))")
        let id = try #require(ExecTests.executionID(out.stderrText))
        let entries = try Harness.journal(
            ["--namespace=\(namespace)", "--all", "RUNVOY_EXECUTION_ID=\(id)"], until: { $0.count >= 3 },
            seconds: 20)
        #expect(entries.count == 3)
        #expect(entries.first?["RUNVOY_ARGV"] == JSONText.array(["true"] + big))
    }
}

/// Collects every message sent to a NOTIFY_SOCKET from a thread of its own, so that the daemon's sd_notify never
/// waits on a full socket queue while the test does something else.
final class NotifyCollector: @unchecked Sendable {
    private let socket: NotifySocket
    private let lock = NSLock()
    private var messages: [String] = []
    private var closed = false

    init(path: String) throws {
        socket = try NotifySocket(path: path)
        Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !lock.withLock({ closed }) {
                let n = buffer.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    let message = String(decoding: buffer.prefix(n), as: UTF8.self)
                    lock.withLock { messages.append(message) }
                }
            }
        }.start()
    }

    func close() { lock.withLock { closed = true } }

    /// Waits until a message matching `match` has arrived (after one matching `after`, when given).
    func waitFor(
        after: ((String) -> Bool)? = nil, seconds: Double = 30, match: (String) -> Bool
    ) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var seen = lock.withLock { messages }
            if let after, let start = seen.firstIndex(where: after) {
                seen = Array(seen[(start + 1)...])
            } else if after != nil {
                seen = []
            }
            if seen.contains(where: match) { return }
            usleep(20_000)
        }
        throw HarnessError("no such message on NOTIFY_SOCKET within \(seconds) s: \(lock.withLock { messages })")
    }
}
