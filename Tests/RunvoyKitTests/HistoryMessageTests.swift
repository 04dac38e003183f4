import Foundation
import RunvoyKit
import Testing

/// The `list` and execution-object messages across versions (issue 18): a client reads replies with members it
/// does not know and replies without the ones added for paging and bounded argv.
struct HistoryMessageTests {
    static let oldExecution = #"""
        {"execution_id":"01jdx7y3m1qk2f6e8v9w0zabcd","status":"succeeded","caller_uid":0,"caller_user":"root",
        "caller_pid":1,"executor":"default","run_as":"nobody:nogroup","argv":["true"],"working_directory":"/",
        "env_keys":[],"pid":7,"exit_code":0,"signal":null,"created_at_ms":1,"started_at_ms":1,"finished_at_ms":2,
        "duration_usec":1,"stdout_bytes":0,"stderr_bytes":0,"stdin_bytes":null,"stored_bytes":0,"dropped_bytes":0,
        "output_pruned":false,"config_digest":"0123456789abcdef","reason":null,"usage":null,"edit":null,
        "terminal":null}
        """#

    @Test func aReplyFromADaemonBeforePagingReadsAsWholeAndComplete() throws {
        let list = try JSONDecoder().decode(
            ListResult.self, from: Data(#"{"executions":[\#(Self.oldExecution)]}"#.utf8))
        #expect(list.more == false)
        #expect(list.executions.first?.argvTruncated == false && list.executions.first?.envKeysTruncated == false)
        #expect(list.executions.first?.argv == ["true"])
    }

    @Test func membersAClientDoesNotKnowAreIgnored() throws {
        let newer = Self.oldExecution.dropLast() + #","argv_truncated":true,"some_day":{"x":[1]}}"#
        let info = try JSONDecoder().decode(ExecutionInfo.self, from: Data(newer.utf8))
        #expect(info.argvTruncated)
        let list = try JSONDecoder().decode(
            ListResult.self, from: Data(#"{"executions":[],"more":true,"cursor":"x"}"#.utf8))
        #expect(list.more && list.executions.isEmpty)
    }

    @Test func theNewMembersAreAlwaysSentAndRoundTrip() throws {
        let info = try JSONDecoder().decode(ExecutionInfo.self, from: Data(Self.oldExecution.utf8))
        let object = try JSONSerialization.jsonObject(with: Data(try Frame.payload(info))) as? [String: Any]
        #expect(object?["argv_truncated"] as? Bool == false && object?["env_keys_truncated"] as? Bool == false)
        var cut = info
        cut.argvTruncated = true
        cut.envKeysTruncated = true
        #expect(try JSONDecoder().decode(ExecutionInfo.self, from: Data(try Frame.payload(cut))) == cut)
        let list = ListResult(executions: [cut], more: true)
        #expect(try JSONDecoder().decode(ListResult.self, from: Data(try Frame.payload(list))) == list)
        let params = ListParams(limit: 5, before: "01jdx7y3m1qk2f6e8v9w0zabcd")
        let encoded = String(decoding: try Frame.payload(params), as: UTF8.self)
        #expect(encoded == #"{"before":"01jdx7y3m1qk2f6e8v9w0zabcd","limit":5}"#)
    }
}
