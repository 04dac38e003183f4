import Foundation
import Glibc
import RunvoyKit
import Testing

/// The client's socket and exchange against real Unix sockets: where no daemon listens, a path the kernel cannot
/// take, and a peer that breaks the protocol or the connection. Each ends in a `ClientError` whose code a caller
/// acts on and whose message says what happened.
struct ClientSocketTests {
    /// The `ClientError` `body` throws; nil (recorded as an issue) when it throws none or another error.
    static func failure<T>(_ body: () throws -> T) -> ClientError? {
        do {
            _ = try body()
            Issue.record("no error")
            return nil
        } catch {
            #expect(error is ClientError, "\(error)")
            return error as? ClientError
        }
    }

    static func temporaryFolder() throws -> String {
        var template = Array("/tmp/runvoy-client-XXXXXX".utf8CString)
        return String(cString: try #require(mkdtemp(&template)))
    }

    // MARK: - Connecting

    @Test func connectingWhereNoDaemonListensSaysSo() throws {
        let folder = try Self.temporaryFolder()
        defer { _ = system("rm -rf '\(folder)'") }
        let missing = Self.failure { try UnixSocket(connectingTo: folder + "/runvoyd.sock") }
        #expect(missing?.code == .daemonNotRunning)
        #expect(missing?.message == "runvoyd is not running at \(folder)/runvoyd.sock (No such file or directory)")

        // A file left where the socket was: nothing accepts there.
        #expect(FileManager.default.createFile(atPath: folder + "/stale.sock", contents: Data()))
        let stale = Self.failure { try UnixSocket(connectingTo: folder + "/stale.sock") }
        #expect(stale?.code == .daemonNotRunning)
        #expect(stale?.message == "runvoyd is not running at \(folder)/stale.sock (Connection refused)")

        let through = Self.failure { try UnixSocket(connectingTo: folder + "/stale.sock/runvoyd.sock") }
        #expect(through?.code == .io)
        #expect(through?.message == "connect to \(folder)/stale.sock/runvoyd.sock: Not a directory")
    }

    @Test func aSocketPathLongerThanTheKernelTakesIsRefusedBeforeConnecting() {
        let path = "/tmp/" + String(repeating: "r", count: 103) + ".sock"
        let error = Self.failure { try RunvoyClient(socketPath: path) }
        #expect(error?.code == .io)
        #expect(error?.message == "socket path is too long (113 bytes, at most 107): \(path)")
        // The longest path that fits is tried, and fails only because nothing is there.
        let longest = "/tmp/" + String(repeating: "r", count: 102)
        #expect(Self.failure { try UnixSocket(connectingTo: longest) }?.code == .daemonNotRunning)
    }

    // MARK: - Sending and receiving

    /// A write larger than the socket's buffer on a non-blocking socket waits for room instead of failing, and the
    /// peer gets every byte and then the end of the stream.
    @Test func everyByteIsSentEvenWhenTheSocketIsFull() throws {
        let daemon = try ScriptedDaemon()
        let socket = try UnixSocket(connectingTo: daemon.path)
        let server = try daemon.accept()
        defer { close(server) }
        _ = fcntl(socket.fd, F_SETFL, fcntl(socket.fd, F_GETFL) | O_NONBLOCK)
        let reader = FrameReader(maxFrameBytes: 1024)
        #expect(try socket.receive(into: reader) == -1, "nothing to read yet")
        let received = Mutex(-1)
        let drained = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let count = ScriptedDaemon.drain(server)
            received.withLock { $0 = count }
            drained.signal()
        }
        try socket.sendAll([UInt8](repeating: 0x61, count: 4 << 20))
        socket.shutdownWrite()
        #expect(drained.wait(timeout: .now() + 120) == .success)
        #expect(received.withLock { $0 } == 4 << 20)
    }

    /// A peer that closes while the client's bytes are still unread resets the connection.
    @Test func aResetConnectionIsALostConnection() throws {
        let daemon = try ScriptedDaemon()
        let client = try RunvoyClient(socketPath: daemon.path)
        let server = try daemon.accept()
        try client.socket.sendAll(Array("unread".utf8))
        close(server)
        let error = Self.failure { try client.socket.receive(into: client.reader) }
        #expect(error?.code == .connectionLost)
        #expect(error?.message == "lost the connection to runvoyd: Connection reset by peer")
    }

    /// A daemon that has closed before the request is written, with no refusal for it (only a frame for another
    /// request): the write's own error is what the caller sees.
    @Test func aRequestToAClosedConnectionWithoutARefusalIsALostConnection() throws {
        let daemon = try ScriptedDaemon()
        let client = try RunvoyClient(socketPath: daemon.path)
        let server = try daemon.accept()
        ScriptedDaemon.write(server, ScriptedDaemon.frame("{\"id\":7,\"result\":{}}"))
        close(server)
        while try client.socket.receive(into: client.reader) > 0 {}
        let error = Self.failure { try client.call(.whoami, params: NoParams(), result: WhoamiResult.self) }
        #expect(error?.code == .connectionLost)
        #expect(error?.message == "lost the connection to runvoyd: Broken pipe")
        #expect(error?.remote == nil)
    }

    // MARK: - A peer that breaks the protocol

    /// Accepts the client's connection, reads its request, answers with `bytes` and closes; returns the error the
    /// client's `whoami` call ends in.
    static func answer(
        _ bytes: [UInt8], maxFrameBytes: Int = 1 << 20,
        onEvent: (UnsafeRawBufferPointer) throws -> Void = { _ in }
    ) throws -> ClientError? {
        let daemon = try ScriptedDaemon()
        let client = try RunvoyClient(socketPath: daemon.path, maxFrameBytes: maxFrameBytes)
        let server = try daemon.accept()
        defer { close(server) }
        // The request is whole on the socket before the answer is written: nothing is left unread at close.
        try client.send(Request(id: .number(99), method: .hello, params: NoParams()))
        var request = [UInt8](repeating: 0, count: 4096)
        let n = request.withUnsafeMutableBytes { read(server, $0.baseAddress, $0.count) }
        #expect(n > 4)
        ScriptedDaemon.write(server, bytes)
        shutdown(server, Int32(SHUT_WR))
        return failure {
            try client.stream(.whoami, params: NoParams(), result: WhoamiResult.self, onEvent: onEvent)
        }
    }

    @Test func aPeerThatClosesMidFrameIsALostConnection() throws {
        let error = try Self.answer(ScriptedDaemon.frame("{\"id\":1,", length: 100))
        #expect(error?.code == .connectionLost)
        #expect(error?.message == "runvoyd closed the connection before the end of the stream")
    }

    @Test func aFrameOverTheClientsMaximumIsAProtocolViolation() throws {
        let error = try Self.answer(ScriptedDaemon.frame("{}", length: 65), maxFrameBytes: 64)
        #expect(error?.code == .protocolViolation)
        #expect(error?.message == "frame_too_large: frame of 65 bytes exceeds the maximum of 64 bytes")
    }

    @Test func aPayloadThatIsNotJSONIsAProtocolViolation() throws {
        let error = try Self.answer(ScriptedDaemon.frame("not json"))
        #expect(error?.code == .protocolViolation)
        #expect(error?.message.hasPrefix("unreadable frame from runvoyd: ") == true, "\(error?.message ?? "")")
    }

    @Test func aReplyWithNeitherResultNorErrorIsAProtocolViolation() throws {
        let error = try Self.answer(ScriptedDaemon.frame("{\"id\":1}"))
        #expect(error?.code == .protocolViolation)
        #expect(error?.message == "reply has neither result nor error")
    }

    /// A `ClientError` thrown while an event is handled ends the exchange as it is, not as a protocol violation;
    /// frames for another request are passed over.
    @Test func anEventHandlersClientErrorEndsTheStreamAsItIs() throws {
        let frames =
            ScriptedDaemon.frame("{\"id\":5,\"event\":\"output\"}")
            + ScriptedDaemon.frame("{\"id\":1,\"event\":\"output\",\"data\":\"x\"}")
        let stop = ClientError(.io, "stdout is closed")
        var events = 0
        let error = try Self.answer(frames) { _ in
            events += 1
            throw stop
        }
        #expect(events == 1)
        #expect(error?.code == .io)
        #expect(error?.message == "stdout is closed")
    }
}
