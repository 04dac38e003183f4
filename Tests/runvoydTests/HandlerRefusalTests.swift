import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/PROTOCOL.md: a request a handler cannot serve gets its documented error code and a message that says what
/// to change, and the connection goes on serving. Each request is what a client written from the protocol alone
/// might send; the replies are checked byte for byte.
@Suite struct HandlerRefusalTests {
    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)

    @Test func aHelloOfferingOnlyUnknownVersionsIsRefusedAndTheConnectionServesOn() async throws {
        try await InProcessConnection.with(caller: RouterTests.nobody) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"hello","params":{"versions":[7,99]}}"#,
                #"{"error":{"code":"unsupported_version","message":"none of the protocol versions [7, 99] is spoken here; this daemon speaks [1]"},"id":1}"#
            )
            let reply = await connection.call(#"{"v":1,"id":2,"method":"hello","params":{"versions":[1,99]}}"#)
            #expect(reply.contains(#""protocol":1"#), "\(reply)")
        }
    }

    @Test func terminalAndSignalRequestsWithValuesOutsideTheirRangeAreInvalidArguments() async throws {
        try await InProcessConnection.with(caller: RouterTests.nobody) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"resize","params":{"rows":0,"cols":80}}"#,
                #"{"error":{"code":"invalid_argument","message":"a terminal has 1 to 10000 rows and columns"},"id":1}"#)
            await connection.expectReply(
                to: #"{"v":1,"id":2,"method":"resize","params":{"rows":24,"cols":10001}}"#,
                #"{"error":{"code":"invalid_argument","message":"a terminal has 1 to 10000 rows and columns"},"id":2}"#)
            await connection.expectReply(
                to: #"{"v":1,"id":3,"method":"signal","params":{"signal":"SIGNOPE"}}"#,
                #"{"error":{"code":"invalid_argument","message":"unknown signal 'SIGNOPE'"},"id":3}"#)
        }
    }

    @Test func aTraceNamesExactlyOneOfAnExecutionAndARequest() async throws {
        try await InProcessConnection.with(caller: Self.root) { connection in
            let refusal =
                #"{"error":{"code":"bad_request","message":"trace needs exactly one of execution_id and request_id"},"id":"#
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"trace","params":{"execution_id":"x","request_id":"y"}}"#, refusal + "1}")
            await connection.expectReply(to: #"{"v":1,"id":2,"method":"trace","params":{}}"#, refusal + "2}")
        }
    }

    @Test func explainingOnAnExecutorThatIsNotThereNamesIt() async throws {
        try await InProcessConnection.with(caller: RouterTests.nobody) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"explain","params":{"argv":["id"],"executor":"nowhere"}}"#,
                #"{"error":{"code":"no_such_executor","message":"no executor named 'nowhere'"},"id":1}"#)
        }
    }

    @Test func aReloadOfTheEmbeddedConfigurationSaysThereIsNoFile() async throws {
        try await InProcessConnection.with(caller: Self.root) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"reload"}"#,
                #"{"error":{"code":"invalid_state","message":"runvoyd runs on its embedded configuration; there is no file to reload"},"id":1}"#
            )
        }
    }
}
