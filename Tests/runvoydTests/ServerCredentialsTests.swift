import Foundation
import Glibc
import NIOCore
import NIOEmbedded
import NIOPosix
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/SECURITY.md: identity comes from the kernel's peer credentials only, and a connection the kernel gives none
/// for is not served. On Linux every accepted Unix stream socket has credentials, so no client can provoke the
/// failure: the failing read is injected through `RunvoyServer.initializer`'s `credentials` seam, the rest (NIO's
/// accept, the initializer the daemon uses, the pipeline) is real.
@Suite struct ServerCredentialsTests {
    /// The real read fails closed on a channel that offers no socket options.
    @Test func aChannelWithoutSocketOptionsHasNoCaller() throws {
        let channel = EmbeddedChannel()
        #expect(throws: PeerCredentials.PeerCredentialsError.self) {
            try PeerCredentials.read(from: channel).wait()
        }
    }

    /// The first connection's credentials cannot be read: it is closed without a byte and never reaches the
    /// server's accept loop; the second (real credentials) is served, and is the first one the loop sees.
    @Test func aConnectionWithoutCredentialsIsClosedUnserved() async throws {
        var template = Array("/tmp/runvoy-cred-XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { FileSystem.removeTree(directory) }
        let path = directory + "/s.sock"
        let calls = Mutex(0)
        let credentials: @Sendable (any Channel) -> EventLoopFuture<Caller> = { channel in
            let call = calls.withLock {
                $0 += 1
                return $0
            }
            guard call > 1 else { return channel.eventLoop.makeFailedFuture(PeerCredentials.PeerCredentialsError()) }
            return PeerCredentials.read(from: channel)
        }
        let config = try ConfigLoader.parse(
            yaml: """
                state_directory: \(directory)/state
                executors:
                  only: {default: true, run_as: {user: nobody}, commands: any}
                """, file: "cred.yaml")
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(
                unixDomainSocketPath: path,
                childChannelInitializer: RunvoyServer.initializer(
                    config: ConfigStore(config), pendingFrames: PendingFrames(), credentials: credentials))
        try await server.executeThenClose { inbound in
            let unserved = try Self.connect(path)
            defer { close(unserved) }
            // The server may close it before the frame is written (EPIPE then): either way nothing is served.
            let sent = Self.trySend(unserved, frame: "A")
            #expect(sent || errno == EPIPE || errno == ECONNRESET, "send: \(errno)")
            #expect(Self.readsEndWithoutAByte(unserved), "a connection without credentials was served")
            let served = try Self.connect(path)
            defer { close(served) }
            try Self.send(served, frame: "B")
            var iterator = inbound.makeAsyncIterator()
            let accepted = try #require(try await iterator.next())
            #expect(accepted.caller.uid == getuid())
            try await accepted.channel.executeThenClose { frames, _ in
                var reader = frames.makeAsyncIterator()
                let first = try #require(try await reader.next())
                #expect(String(buffer: first) == "B", "the accept loop saw the connection without credentials")
            }
        }
        #expect(calls.withLock { $0 } == 2)
    }

    static func connect(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = try #require(ListeningSocket.Folder.address(path))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(connected == 0, "connect: \(errno)")
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func send(_ fd: Int32, frame text: String) throws {
        try #require(trySend(fd, frame: text), "send: \(errno)")
    }

    /// Whether the whole frame was written; errno says why not.
    static func trySend(_ fd: Int32, frame text: String) -> Bool {
        let bytes = Frame.header(length: text.utf8.count) + Array(text.utf8)
        return Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count
    }

    /// Whether the other end closed (EOF or reset) before sending anything; false on a byte or the receive timeout.
    static func readsEndWithoutAByte(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, 0)
            if n < 0 && errno == EINTR { continue }
            return n == 0 || (n < 0 && errno == ECONNRESET)
        }
    }
}
