import Glibc
import RunvoyKit
import Testing

/// runvoyd refuses a connection at once when it is over a limit (`busy`, with `"id": null`) and closes it, often
/// before the client has written its request: the client must still show what the daemon said, not the
/// "Broken pipe" its write then fails with.
struct ClientRefusalTests {
    /// A listening socket that plays a daemon which refuses every connection as soon as it accepts it.
    final class RefusingDaemon {
        let path: String
        let listener: Int32
        static let refusal = RunvoyError(.busy, "runvoyd is at its limit of 32 connections; try again later")

        init() throws {
            var template = Array("/tmp/runvoy-refusing-XXXXXX".utf8CString)
            let directory = String(cString: try #require(mkdtemp(&template)))
            path = directory + "/sock"
            listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: path.utf8)
                raw[path.utf8.count] = 0
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            #expect(bound == 0 && listen(listener, 4) == 0)
        }

        deinit {
            close(listener)
            unlink(path)
            rmdir(String(path.dropLast(5)))
        }

        /// Accepts the connection a client has made, tells it `busy` and closes it, as runvoyd does at its limit.
        func refuseNext() throws {
            let fd = accept(listener, nil, nil)
            #expect(fd >= 0)
            let frame = try Frame.encode(Reply<NoParams>(id: nil, error: Self.refusal))
            _ = frame.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
    }

    @Test func aConnectionRefusedBeforeTheRequestIsWrittenShowsTheDaemonsError() throws {
        let daemon = try RefusingDaemon()
        let client = try RunvoyClient(socketPath: daemon.path)
        // The daemon has refused and closed before the request goes out.
        try daemon.refuseNext()
        do {
            _ = try client.call(.whoami, params: NoParams(), result: WhoamiResult.self)
            Issue.record("the call succeeded")
        } catch {
            #expect(error.remote == RefusingDaemon.refusal, "\(error)")
            #expect(error.description == "runvoyd is at its limit of 32 connections; try again later [busy]")
        }
    }

    @Test func aConnectionRefusedAfterTheRequestIsWrittenShowsTheDaemonsErrorToo() throws {
        let daemon = try RefusingDaemon()
        let client = try RunvoyClient(socketPath: daemon.path)
        try client.send(Request(id: client.makeID(), method: .hello, params: NoParams()))
        try daemon.refuseNext()
        do {
            _ = try client.call(.whoami, params: NoParams(), result: WhoamiResult.self)
            Issue.record("the call succeeded")
        } catch {
            #expect(error.remote == RefusingDaemon.refusal, "\(error)")
        }
    }
}
