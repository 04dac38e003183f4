import Foundation
import Glibc
import RunvoyKit
import Testing

/// Review 14 proofs of concept against a real runvoyd, as real Unix users (useradd; removed after). Each test
/// FAILS on b80035d. Needs root, a journal, `unshare --map-auto` (util-linux 2.38) and newuidmap.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class AdmissionReviewPoCIntegrationTests {
    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var dev: String { "rvr\(suffix)-dev" }
    var none: String { "rvr\(suffix)-none" }

    init() throws {
        // useradd gives each new user 65,536 subordinate uids (/etc/subuid), as on Debian, Ubuntu and Fedora.
        for user in [dev, none] {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        }
    }

    deinit {
        for user in [dev, none] { try? AuthorizationTests.sh("userdel \(user)") }
    }

    /// Opens `count` connections, says `hello` on each, prints `served N` (those answered without an error),
    /// and holds them until `stop` exists (at most 60 s).
    static let holder = #"""
        import json, os, socket, struct, sys, time
        path, count, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        def frame(obj):
            b = json.dumps(obj).encode(); return struct.pack(">I", len(b)) + b
        def read(s):
            s.settimeout(5)
            try:
                h = b""
                while len(h) < 4:
                    c = s.recv(4 - len(h))
                    if not c: return None
                    h += c
                (n,) = struct.unpack(">I", h); b = b""
                while len(b) < n:
                    c = s.recv(n - len(b))
                    if not c: return None
                    b += c
                return json.loads(b)
            except OSError:
                return None
        held = []
        for i in range(count):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                s.sendall(frame({"v": 1, "id": 1, "method": "hello"}))
            except OSError:
                # Refused over its share: runvoyd sent `busy` and closed before the hello was written.
                s.close(); continue
            f = read(s)
            if f is not None and "error" not in f: held.append(s)
            else: s.close()
        os.write(1, ("uid %d served %d\n" % (os.getuid(), len(held))).encode())  # one write: 8 holders share the file
        start = time.time()
        while not os.path.exists(stop) and time.time() - start < 60: time.sleep(0.1)
        """#

    /// Issue 14's first reproduction, again, by one role-less user of the socket's group: through a user namespace
    /// (`unshare --map-auto`, newuidmap) it connects as 8 of its subordinate uids. Each is a "user" of its own to
    /// the fair shares (4 connections each), so together they take every connection but the administrators'
    /// reserve, and a developer is refused with `busy` (the same goes for `rate_limited` buckets and the
    /// per-user refusal windows of the audit trail: 65,536 subordinate uids each get their own).
    @Test func aRoleLessUserWithSubordinateUidsTakesEveryConnection() throws {
        let (dev, none) = (dev, none)
        let daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(of: "  max_connections: 4096\n", with: "  max_connections: 32\n")
                .replacingOccurrences(
                    of: "roles:\n  developer: {users: [\"*\"]}\n", with: "roles:\n  developer: {users: [\(dev)]}\n")
        })
        defer { daemon.stop() }
        let script = daemon.directory + "/hold.py"
        try Self.holder.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(daemon.directory, 0o755)
        chmod(script, 0o644)
        let stop = daemon.directory + "/stop-hold"
        let output = daemon.directory + "/hold.out"
        // Inside the namespace uid N is the N-th subordinate uid of `none` outside: a uid with no passwd entry.
        let inner =
            "for i in 1 2 3 4 5 6 7 8; do setpriv --reuid=$i --regid=$i --keep-groups /usr/bin/python3 \(script) "
            + "\(daemon.socketPath) 4 \(stop) & done; wait"
        let flood = try ChildProcess(
            [
                "/usr/sbin/runuser", "-u", none, "--", "/usr/bin/unshare", "--user", "--map-auto", "--map-root-user",
                "/bin/sh", "-c", inner,
            ],
            stdoutPath: output, stderrPath: output + ".err")
        func printed() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        let ready = Harness.waitUntil(seconds: 60) { printed().split(separator: "\n").count >= 8 }
        #expect(
            ready,
            "the holders did not start: \(printed()) \((try? String(contentsOfFile: output + ".err", encoding: .utf8)) ?? "")"
        )
        let developer = try daemon.ctl(["exec", "--", "true"], asUser: dev)
        _ = FileManager.default.createFile(atPath: stop, contents: nil)
        flood.wait()
        let served = printed().split(separator: "\n").compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }
        // All the unnamed uids are one role-less account: together they hold max_connections_without_role (4).
        #expect(served.count == 8 && served.reduce(0, +) <= 4, "served per uid: \(served)")
        #expect(
            developer.status == 0,
            "a developer while one role-less user holds \(served.reduce(0, +)) connections under \(served.count) uids: \(developer.stderrText)"
        )
    }
}

/// Review 14, finding 6: runvoyctl sends no signal for a command it does not know to run. Against a stand-in for
/// runvoyd that takes the `exec` and answers nothing (as one busy before the first `queued` event), Ctrl-C makes
/// runvoyctl leave: it closes its connection and sends no `signal`, which would otherwise wait behind the `exec`
/// and interrupt the command as soon as it started, long after the user gave up. (Before, it sent one in band.)
@Suite struct CtlInterruptBeforeStartTests {
    @Test func ctrlCBeforeTheStartedEventLeavesAndSendsNoSignal() throws {
        let directory = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/fake.sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0 && listen(listener, 8) == 0)
        let ctl = try ChildProcess(
            [Harness.runvoyctl, "exec", "--socket", path, "--", "sleep", "1"], stderrPath: directory + "/ctl.err")
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connection = accept(listener, nil, nil)
        try #require(connection >= 0, "runvoyctl did not connect")
        defer { close(connection) }
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        func receive() -> Int {
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = recv(connection, &buffer, buffer.count, 0)
            if n > 0 { received += buffer[..<n] }
            return n
        }
        while !String(decoding: received, as: UTF8.self).contains("\"exec\"") { guard receive() > 0 else { break } }
        #expect(String(decoding: received, as: UTF8.self).contains("\"exec\""))
        ctl.signal(SIGINT)
        while receive() > 0 {}
        let status = ctl.wait(seconds: 30)
        let stderr = (try? String(contentsOfFile: directory + "/ctl.err", encoding: .utf8)) ?? ""
        #expect(status == 128 + SIGINT, "\(stderr)")
        #expect(!String(decoding: received, as: UTF8.self).contains("\"signal\""), "runvoyctl sent a signal")
        #expect(stderr.contains("left without signalling"), "\(stderr)")
        // No second connection (an out-of-band signal) either.
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        let other = accept(listener, nil, nil)
        #expect(other < 0, "runvoyctl opened another connection")
        if other >= 0 { close(other) }
    }
}
