import Foundation
import Glibc
import Testing

@testable import RunvoyDaemon

/// The journal writer against a datagram socket standing in for journald, which the test reads (or does not).
struct JournalTests {
    @Test func encodesTheNativeProtocol() {
        #expect(Journal.encode([("A", "b"), ("C", "")]) == Array("A=b\nC=\n".utf8))
        let value = "one\ntwo"
        var expected = Array("M\n".utf8)
        withUnsafeBytes(of: UInt64(7).littleEndian) { expected.append(contentsOf: $0) }
        expected += Array("one\ntwo\n".utf8)
        #expect(Journal.encode([("M", value)]) == expected)
    }

    /// A bound datagram socket nobody reads until `receiveAll` is called.
    final class FakeJournald {
        let path: String
        let fd: Int32

        init() throws {
            path = NSTemporaryDirectory() + "/runvoy-journal-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
            fd = socket(AF_UNIX, SocketKind.datagram, 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: path.utf8)
                raw[path.utf8.count] = 0
            }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard rc == 0 else { throw POSIXError(.EADDRINUSE) }
        }

        deinit {
            close(fd)
            unlink(path)
        }

        /// Every datagram waiting, as text.
        func receiveAll() -> [String] {
            var messages: [String] = []
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n < 0 { return messages }
                messages.append(String(decoding: buffer.prefix(n), as: UTF8.self))
            }
        }
    }

    @Test func aJournalThatDoesNotReadTimesOutRecordsThenRecoversInOrder() async throws {
        let journald = try FakeJournald()
        let journal = Journal(socketPath: journald.path)
        // Fill its queue (net.unix.max_dgram_qlen datagrams) until a record with a deadline cannot be written.
        var written = 0
        var timedOut = false
        while written < 100_000 {
            do {
                try await journal.send([("MESSAGE", "fill \(written)")], timeout: .milliseconds(50))
                written += 1
            } catch {
                #expect(error.errno == ETIMEDOUT)
                timedOut = true
                break
            }
        }
        #expect(timedOut)
        #expect(journal.health != .ok)
        // A best-effort record waits; the one that timed out is never written.
        journal.post([("MESSAGE", "best effort")], kind: .audit)

        // Room again: the waiting record is written, then new ones, in order, and the journal is healthy again.
        // (The writer may already send the waiting one while the queue is being read.)
        var received = journald.receiveAll()
        try await journal.send([("MESSAGE", "after")], timeout: .seconds(10))
        #expect(journal.health == .ok)
        received += journald.receiveAll()
        let expected = (0..<written).map { "MESSAGE=fill \($0)\n" } + ["MESSAGE=best effort\n", "MESSAGE=after\n"]
        #expect(received == expected)
    }

    @Test func noJournalFailsAtOnce() async {
        let journal = Journal(socketPath: "/nonexistent/runvoy-journal.sock")
        await #expect(throws: JournalError.self) {
            try await journal.send([("MESSAGE", "x")], timeout: .seconds(30))
        }
    }
}
