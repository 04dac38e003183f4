import Glibc
import RunvoyKit
import Testing

/// runvoyd refuses a connection at once when it is over a limit (`busy`, with `"id": null`) and closes it, often
/// before the client has written its request: the client must still show what the daemon said, not the
/// "Broken pipe" its write then fails with.
struct ClientRefusalTests {
    /// A daemon that refuses every connection as soon as it accepts it.
    final class RefusingDaemon {
        let daemon: ScriptedDaemon
        var path: String { daemon.path }
        static let refusal = RunvoyError(.busy, "runvoyd is at its limit of 32 connections; try again later")

        init() throws { daemon = try ScriptedDaemon() }

        /// Accepts the connection a client has made, tells it `busy` and closes it, as runvoyd does at its limit.
        func refuseNext() throws {
            let fd = try daemon.accept()
            ScriptedDaemon.write(fd, try Frame.encode(Reply<NoParams>(id: nil, error: Self.refusal)))
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
