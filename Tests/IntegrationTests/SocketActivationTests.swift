import Foundation
import Glibc
import Testing

/// docs/CONFIGURATION.md (socket activation): runvoyd adopts exactly one listening Unix stream socket from systemd.
/// A socket unit that passes two, or one of another kind, ends the start with words that name the problem, and
/// nothing is served. (`LifecycleTests.adoptsTheSocketSystemdPasses` is the case that works.) The sockets are
/// passed by systemd's own `systemd-socket-activate`, which starts runvoyd on the first connection or datagram.
@Suite(.enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct SocketActivationTests {
    /// Starts runvoyd behind `systemd-socket-activate` with `options`, wakes it with `wake`, and returns its exit
    /// status and log once it has ended.
    static func refusedStart(
        _ options: (String) -> [String], wake: (String) throws -> Void
    ) async throws -> (status: Int32?, log: String) {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try DaemonFixture(
            wrapper: ["/usr/bin/systemd-socket-activate", "-E", "RUNVOYD_LOG_STDERR=1"] + options(dir),
            waitForSocket: false, socketPath: dir + "/a.sock")
        defer { daemon.stop() }
        // systemd-socket-activate binds before it starts the daemon; wake it once the socket is there.
        #expect(await Harness.waitUntilDetached(seconds: 60) { access(dir + "/a.sock", F_OK) == 0 })
        try wake(dir + "/a.sock")
        let ended = await Harness.waitUntilDetached(seconds: 60) { daemon.process.status != nil }
        #expect(ended, "runvoyd kept running: \(daemon.log)")
        return (daemon.process.status, daemon.log)
    }

    static func connect(_ path: String, type: Int32) throws {
        let fd = socket(AF_UNIX, type, 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw HarnessError("connect \(path): errno \(errno)") }
        if type == Int32(SOCK_DGRAM.rawValue) { _ = send(fd, "x", 1, 0) }
    }

    @Test func twoSocketsFromSystemdAreRefused() async throws {
        let (status, log) = try await Self.refusedStart(
            { ["-l", $0 + "/a.sock", "-l", $0 + "/b.sock"] },
            wake: { try Self.connect($0, type: Int32(SOCK_STREAM.rawValue)) })
        #expect(status != nil && status != 0, "\(log)")
        #expect(log.contains("systemd passed 2 sockets; runvoyd expects exactly one"), "\(log)")
    }

    @Test func aDatagramSocketFromSystemdIsRefused() async throws {
        let (status, log) = try await Self.refusedStart(
            { ["--datagram", "-l", $0 + "/a.sock"] }, wake: { try Self.connect($0, type: Int32(SOCK_DGRAM.rawValue)) })
        #expect(status != nil && status != 0, "\(log)")
        #expect(log.contains("the socket systemd passed is not a listening Unix stream socket"), "\(log)")
    }
}
