import Foundation
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// `status`'s reply is the execution or the run itself, not wrapped: it encodes as the bare object, and a reply
/// read back is a run only when it has a run's fields.
struct StatusReplyTests {
    static let execution = ExecutionInfo(
        executionId: "01JD0000000000000000000001", status: .failed, callerUid: 1000, callerUser: "alice",
        callerPid: 42, executor: "default", runAs: "nobody:nogroup", argv: ["sh", "-c", "exit 3"],
        workingDirectory: "/", envKeys: ["LANG"], pid: 77, exitCode: 3, signal: nil, createdAtMs: 10,
        startedAtMs: 11, finishedAtMs: 12, durationUsec: 1000, stdoutBytes: 0, stderrBytes: 0, storedBytes: 0,
        droppedBytes: 0, outputPruned: false, configDigest: "abc", reason: nil)

    static let run = PlaybookRunResult(
        runId: "run-01JD0000000000000000000002", playbook: "release", state: "failed",
        steps: [
            PlaybookStepOutcome(
                index: 0, name: "plan", state: "failed", executionId: "01JD0000000000000000000001", exitCode: 3),
            PlaybookStepOutcome(index: 1, name: "apply", state: "skipped"),
        ], callerUid: 1000, callerUser: "alice", params: ["env": "prod"], startedAtMs: 10, finishedAtMs: 12)

    /// An encoder whose output is the same for the same value (a dictionary's keys sorted).
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }

    static func roundTrip(_ reply: StatusReply) throws -> (Data, StatusReply) {
        let data = try encoder.encode(reply)
        return (data, try JSONDecoder().decode(StatusReply.self, from: data))
    }

    @Test func anExecutionIsSentBareAndReadBackAsAnExecution() throws {
        let (data, decoded) = try Self.roundTrip(.execution(Self.execution))
        #expect(data == (try Self.encoder.encode(Self.execution)))
        guard case .execution(let info) = decoded else {
            Issue.record("read back as \(decoded)")
            return
        }
        #expect(info == Self.execution)
    }

    @Test func aRunIsSentBareAndReadBackAsARun() throws {
        let (data, decoded) = try Self.roundTrip(.run(Self.run))
        #expect(data == (try Self.encoder.encode(Self.run)))
        guard case .run(let run) = decoded else {
            Issue.record("read back as \(decoded)")
            return
        }
        #expect(run == Self.run)
    }

    @Test func somethingThatIsNeitherIsRefused() {
        let data = Data(#"{"run_id":"run-x"}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(StatusReply.self, from: data) }
    }
}
