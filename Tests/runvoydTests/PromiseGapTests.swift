import Glibc
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Promises of docs/SECURITY.md and docs/AUDIT.md that had no test (docs/TESTING.md, "From promise to test"),
/// checked in process through the real exec path.
@Suite struct PromiseGapTests {
    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)

    /// Sends `count` datagrams to the test's journal, leaving room for as many more as its queue
    /// holds beyond them (the kernel queues net.unix.max_dgram_qlen + 1 datagrams).
    static func fill(_ path: String, count: Int) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let message = Array("MESSAGE=filler\n".utf8)
        for _ in 0..<count {
            let sent = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(
                        fd, message, message.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            try #require(sent == message.count)
        }
    }

    /// The queue length of Unix datagram sockets on this machine.
    static var datagramQueueLength: Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/unix/max_dgram_qlen", encoding: .utf8)) ?? "10"
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 10
    }

    /// The `decision` record is written and then the journal stops taking records: the `execution_started` record
    /// cannot be written, so nothing runs, the caller gets `audit_unavailable`, and the history says why.
    @Test func aStartRecordThatCannotBeWrittenAfterTheDecisionRunsNothing() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        try Self.fill(fixture.journald.path, count: Self.datagramQueueLength)
        let spawner = ExecLaunchTests.FailingSpawner(SpawnError(.exec, errno: ENOENT))
        let manager = fixture.manager(spawner)
        do {
            _ = try await manager.start(
                ExecParams(argv: ["true"]), requestID: .number(1), caller: Self.root, config: fixture.config,
                sink: nil
            ) { _ in }
            Issue.record("an execution started without its start record")
        } catch {
            #expect(error.code == .auditUnavailable, "\(error)")
        }
        #expect(spawner.calls == 0, "a process was created")
        let row = try fixture.row()
        #expect(row.status == .failed && row.pid == nil)
        #expect(row.reason?.hasPrefix("audit_unavailable") == true, "\(row.reason ?? "")")
        #expect(fixture.secretFolders.isEmpty)
        let events = fixture.records().map(\.event).filter { $0 != "?" }
        #expect(events == ["decision"], "\(events)")
    }

    /// The command runs in its executor's working directory (`/` unless the configuration says otherwise), not in
    /// the daemon's or the caller's.
    @Test func theCommandRunsInItsExecutorsWorkingDirectory() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        let manager = fixture.manager(PosixSpawner())
        let sink = ExecutionLifetimeTests.CollectingSink()
        let expected = try #require(fixture.config.executor(named: "vault")).workingDirectory
        try await ExecutionLifetimeTests.running(manager) {
            let execution = try await manager.start(
                ExecParams(argv: ["pwd"]), requestID: .number(2), caller: Self.root, config: fixture.config,
                sink: sink
            ) { _ in }
            await execution.waitFinished()
        }
        let stdout = String(decoding: await sink.output[.stdout] ?? [], as: UTF8.self)
        #expect(stdout == expected + "\n")
        #expect(try fixture.row().workingDirectory == expected)
    }
}
