import Foundation
import Glibc
import Testing

/// Decisions and executions leave the right journal entries; denials are refused and audited; a journal that
/// cannot be written stops executions (fail-closed).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class AuditTests {
    let daemon: DaemonFixture

    init() throws {
        daemon = try DaemonFixture()
    }

    deinit {
        daemon.stop()
    }

    @Test func anExecutionTellsItsWholeStoryInTheJournal() throws {
        let out = try daemon.ctl(["exec", "--", "sh", "-c", "exit 5"], asUser: "nobody")
        #expect(out.status == 5)
        let id = try #require(ExecTests.executionID(out.stderrText))
        let entries = try Harness.journal(
            ["_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(id)"], until: { $0.count >= 3 })
        let kinds = entries.compactMap { $0["RUNVOY_EVENT"] }
        #expect(kinds == ["decision", "execution_started", "execution_finished"])
        for entry in entries {
            #expect(entry["SYSLOG_IDENTIFIER"] == "runvoyd")
            #expect(entry["RUNVOY_CALLER_UID"] == "65534")
            #expect(entry["RUNVOY_CALLER_USER"] == "nobody")
            #expect(entry["RUNVOY_EXECUTOR"] == "default")
            #expect(entry["RUNVOY_RUN_AS"] == "nobody:nogroup")
            #expect(entry["RUNVOY_ARGV"] == #"["sh","-c","exit 5"]"#)
            #expect(entry["RUNVOY_CALLER_PID"].flatMap(Int.init) ?? 0 > 0)
            #expect(entry["MESSAGE_ID"]?.count == 32)
        }
        // docs/AUDIT.md: decision 5 (allow), start 5, end 5 when the status is not 0.
        #expect(entries.map { $0["PRIORITY"] } == ["5", "5", "5"])
        #expect(entries[0]["RUNVOY_DECISION"] == "allow")
        #expect(entries[0]["MESSAGE_ID"] == "787f0a272bf243ed98b3018cc90a184e")
        #expect(entries[1]["MESSAGE_ID"] == "1d048f66969c4a758be0048c50380029")
        #expect(entries[2]["MESSAGE_ID"] == "e8390f8c07ed424c9272b23a12e6357f")
        #expect(entries[2]["RUNVOY_EXIT_STATUS"] == "5")
        #expect(entries[2]["RUNVOY_DURATION_USEC"].flatMap(Int.init) ?? -1 >= 0)

        // ... and the end of a command that exits 0 is 6.
        let succeeded = try daemon.ctl(["exec", "--", "true"], asUser: "nobody")
        let succeededID = try #require(ExecTests.executionID(succeeded.stderrText))
        let ended = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(succeededID)", "RUNVOY_EVENT=execution_finished",
        ])
        #expect(ended.first?["RUNVOY_EXIT_STATUS"] == "0" && ended.first?["PRIORITY"] == "6")
    }

    @Test func aUserNotAllowedOnAnExecutorIsDeniedAndAudited() throws {
        let out = try daemon.ctl(["exec", "-e", "staff", "--", "id"], asUser: "nobody")
        #expect(out.status == 125)
        #expect(out.stderrText.contains("permission_denied"))
        #expect(out.stderrText.contains("may not use executor 'staff'"))
        #expect(out.stderrText.contains("ask the test suite"))
        let denials = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=decision", "RUNVOY_DECISION=deny", "RUNVOY_EXECUTOR=staff",
            "RUNVOY_CALLER_UID=65534",
        ])
        #expect(denials.last?["RUNVOY_ARGV"] == #"["id"]"#)
        #expect(denials.last?["RUNVOY_REASON"]?.contains("permission_denied") == true)
        #expect(denials.last?["PRIORITY"] == "4")
    }

    @Test func commandRulesAreEnforcedAndAudited() throws {
        let allowed = try daemon.ctl(["exec", "-q", "-e", "limited", "--", "echo", "hi", "there"], asUser: "nobody")
        #expect(allowed.status == 0)
        #expect(allowed.stdoutText == "hi there\n")
        let exact = try daemon.ctl(["exec", "-q", "-e", "limited", "--", "id", "-u"], asUser: "nobody")
        #expect(exact.status == 0)
        #expect(exact.stdoutText == "65534\n")
        let refused = try daemon.ctl(["exec", "-q", "-e", "limited", "--", "id", "-g"], asUser: "nobody")
        #expect(refused.status == 125)
        #expect(refused.stderrText.contains("command_not_allowed"))
        let denials = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=decision", "RUNVOY_DECISION=deny", "RUNVOY_EXECUTOR=limited",
        ])
        #expect(denials.contains { $0["RUNVOY_ARGV"] == #"["id","-g"]"# })
    }

    @Test func onlyTheStarterOrRootMaySignalAnExecutionByID() throws {
        let script =
            "import socket,struct,sys,json\n"
            + "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); b=sys.argv[2].encode()\n"
            + "s.sendall(struct.pack('>I',len(b))+b); n=struct.unpack('>I',s.recv(4,socket.MSG_WAITALL))[0]\n"
            + "print(s.recv(n,socket.MSG_WAITALL).decode())\n"
        let path = daemon.directory + "/signal.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        /// Sends `signal TERM` for execution `id` as `user` (nil: root); returns the reply frame's text.
        func signal(_ id: String, as user: String?) throws -> String {
            let request = #"{"v":1,"id":2,"method":"signal","params":{"signal":"TERM","execution_id":"\#(id)"}}"#
            var argv = ["/usr/bin/env", "python3", path, daemon.socketPath, request]
            if let user { argv = ["/usr/sbin/runuser", "-u", user, "--"] + argv }
            return try Harness.run(argv).stdoutText
        }
        func terminatedBySIGTERM(_ id: String) throws -> Bool {
            let finished = try Harness.journal([
                "_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_finished",
            ])
            return finished.first?["RUNVOY_SIGNAL"] == String(SIGTERM)
        }
        let unknown = try signal("01aaaaaaaaaaaaaaaaaaaaaaaa", as: nil)
        #expect(unknown.contains("invalid_argument"))

        // Started by root: another user is answered as if the execution did not run, and root may signal it.
        let rootStarted = try daemon.ctl(["exec", "--detach", "--", "sleep", "600"])
        let rootID = rootStarted.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(
            try signal(rootID, as: "nobody")
                == unknown.replacingOccurrences(of: "01aaaaaaaaaaaaaaaaaaaaaaaa", with: rootID))
        let refusal = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=request_denied", "RUNVOY_METHOD=signal",
            "RUNVOY_EXECUTION_ID=\(rootID)",
        ])
        #expect(refusal.first?["RUNVOY_REASON"]?.contains("started by another user") == true)
        #expect(try signal(rootID, as: nil).contains(#""delivered":true"#))
        #expect(try terminatedBySIGTERM(rootID))

        // Started by nobody (not root): another unprivileged user is refused the same way, the starter may signal.
        let nobodyStarted = try daemon.ctl(["exec", "--detach", "--", "sleep", "600"], asUser: "nobody")
        let nobodyID = nobodyStarted.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(nobodyID.count == 26, "\(nobodyStarted.stderrText)")
        #expect(
            try signal(nobodyID, as: "daemon")
                == unknown.replacingOccurrences(of: "01aaaaaaaaaaaaaaaaaaaaaaaa", with: nobodyID))
        let nobodyRefusal = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=request_denied", "RUNVOY_METHOD=signal",
            "RUNVOY_EXECUTION_ID=\(nobodyID)",
        ])
        #expect(nobodyRefusal.first?["RUNVOY_CALLER_UID"] == "1")
        #expect(try signal(nobodyID, as: "nobody").contains(#""delivered":true"#))
        #expect(try terminatedBySIGTERM(nobodyID))
    }

    @Test func unknownExecutorIsASpecificError() throws {
        let out = try daemon.ctl(["exec", "-e", "nope", "--", "true"])
        #expect(out.status == 125)
        #expect(out.stderrText.contains("no_such_executor"))
    }

    @Test func rootMayUseEveryExecutor() throws {
        let out = try daemon.ctl(["exec", "-q", "-e", "staff", "--", "id", "-un"])
        #expect(out.status == 0)
        #expect(out.stdoutText == "nobody\n")
    }

    @Test func secretsInEnvironmentValuesNeverReachTheJournal() throws {
        let out = try daemon.ctl(["exec", "--env", "TF_VAR_token=s3cr3t-value-xyz", "--", "true"])
        #expect(out.status == 0)
        let id = try #require(ExecTests.executionID(out.stderrText))
        let entries = try Harness.journal(
            ["_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(id)"], until: { $0.count >= 3 })
        #expect(entries.count == 3)
        for entry in entries {
            #expect(entry["RUNVOY_ENV_KEYS"] == "TF_VAR_token")
            #expect(!entry.values.contains { $0.contains("s3cr3t-value-xyz") })
        }
    }

    @Test func withoutAJournalExecutionsAreRefused() throws {
        // A daemon in its own mount namespace where the journal socket is gone: fail-closed refuses to run.
        let jailed = try DaemonFixture(wrapper: [
            "/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            "mount -t tmpfs tmpfs /run/systemd/journal && exec \"$@\"", "sh",
        ])
        defer { jailed.stop() }
        let marker = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let out = try jailed.ctl(["exec", "-e", "root", "--", "touch", marker + "/ran"])
        #expect(out.status == 125)
        #expect(out.stderrText.contains("audit_unavailable"))
        #expect(access(marker + "/ran", F_OK) != 0)
        #expect(jailed.log.contains("every execution will be refused"))
    }

    /// docs/AUDIT.md: the decision and the start record must both be accepted before the process is created.
    /// Here the journal takes the decision and then refuses the start record: nothing runs, the caller gets
    /// `audit_unavailable`, and the decision is the request's only record.
    ///
    /// The daemon's journal is a datagram socket of the test's, bind-mounted over /run/systemd/journal in the
    /// daemon's own mount namespace. Its queue is kept full but for one datagram, so the decision is taken and the
    /// start record has to wait; the test then shuts the socket for reading, and that send fails (EPIPE), as a
    /// journald that went away between the two records would make it fail.
    @Test func aStartRecordTheJournalRefusesAfterTheDecisionStopsTheExecution() throws {
        let fake = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: fake) }
        let socketPath = fake + "/socket"
        let journal = try JournalStandIn(path: socketPath)
        let jailed = try DaemonFixture(
            wrapper: [
                "/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                #"mount --bind "$0" /run/systemd/journal && exec "$@""#, fake,
            ], waitForSocket: false)
        defer { jailed.stop() }
        var records: [Data] = []
        // Start-up records arrive while the daemon comes up; take them as they come.
        #expect(
            Harness.waitUntil {
                records += journal.drain()
                return (try? jailed.waitForSocket(seconds: 0.05)) != nil
            }, "\(jailed.log)")
        records += journal.drain()
        #expect(records.contains { $0.range(of: Data("RUNVOY_EVENT=daemon_started\n".utf8)) != nil })

        // Full, then one datagram read: room for exactly one more.
        let filled = journal.fill()
        #expect(filled > 0)
        _ = journal.drain(upTo: 1)
        let marker = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let ctl = try jailed.startCtl(["exec", "-e", "root", "--", "touch", marker + "/ran"])
        // The free place is taken when a probe of ours no longer fits: by the daemon's decision record. (A probe
        // that fits took it itself; reading one old datagram makes room again.)
        let decided = Harness.waitUntil(seconds: 30) {
            guard journal.probe() else { return true }
            _ = journal.drain(upTo: 1)
            return false
        }
        #expect(decided, "the daemon wrote no record; runvoyctl: \(ctl.stderr)")
        journal.shutDownReading()
        records = journal.drain()

        #expect(ctl.process.wait(seconds: 60) == 125)
        #expect(ctl.stderr.contains("audit_unavailable"), "\(ctl.stderr)")
        #expect(access(marker + "/ran", F_OK) != 0)
        let decision = records.filter { $0.range(of: Data("RUNVOY_EVENT=decision\n".utf8)) != nil }
        #expect(decision.count == 1)
        #expect(decision.first?.range(of: Data("RUNVOY_DECISION=allow\n".utf8)) != nil)
        #expect(decision.first?.range(of: Data(marker.utf8)) != nil)
        #expect(!records.contains { $0.range(of: Data("RUNVOY_EVENT=execution_started".utf8)) != nil })
        // The daemon goes on, and says why it refused.
        #expect(jailed.process.isRunning)
        #expect(jailed.log.contains("audit record could not be written; refusing"), "\(jailed.log)")
    }
}

/// A datagram socket standing in for journald's /run/systemd/journal/socket, whose queue the test controls.
final class JournalStandIn {
    let fd: Int32
    let path: String
    /// An unbound socket of the test's own that fills the queue and probes it.
    private let sender: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        sender = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0, sender >= 0 else { throw HarnessError("socket: \(errno)") }
        // The filler's datagrams are charged to its send buffer until read: make room for a full queue of them.
        var size: Int32 = 8 << 20
        setsockopt(sender, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
        let rc = withAddress { bind(fd, $0, $1) }
        guard rc == 0 else { throw HarnessError("bind \(path): \(String(cString: strerror(errno)))") }
        chmod(path, 0o666)
    }

    deinit {
        close(fd)
        close(sender)
    }

    private func withAddress<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Sends one byte to the socket without waiting; false when its queue is full.
    func probe() -> Bool {
        var byte: UInt8 = 0x2E
        return withAddress { sendto(sender, &byte, 1, Int32(MSG_DONTWAIT), $0, $1) } == 1
    }

    /// Probes until the queue is full; returns how many datagrams that took.
    func fill() -> Int {
        var count = 0
        while probe() { count += 1 }
        return errno == EAGAIN ? count : -1
    }

    /// Reads the datagrams waiting (at most `limit`) without waiting for more.
    func drain(upTo limit: Int = .max) -> [Data] {
        var datagrams: [Data] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while datagrams.count < limit {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n >= 0 else { break }
            datagrams.append(Data(buffer.prefix(n)))
        }
        return datagrams
    }

    /// Refuses every datagram from now on (senders get EPIPE); what is queued can still be read.
    func shutDownReading() { shutdown(fd, Int32(SHUT_RD)) }
}
