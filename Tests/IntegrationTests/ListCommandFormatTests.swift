import RunvoyKit
import Testing

@testable import runvoyctl

/// How runvoyctl shows what the daemon cut (issue 18): a shortened argv is marked in `list` and `status`, and
/// `list` says how to see the executions after a page.
struct ListCommandFormatTests {
    static func info(_ id: String, argvTruncated: Bool = false, envKeysTruncated: Bool = false) -> ExecutionInfo {
        ExecutionInfo(
            executionId: id, status: .succeeded, callerUid: 0, callerUser: "root", callerPid: 1, executor: "default",
            runAs: "nobody:nogroup", argv: ["echo", "abc"], workingDirectory: "/", envKeys: ["LANG"], pid: 7,
            exitCode: 0, signal: nil, createdAtMs: 1, startedAtMs: 1, finishedAtMs: 2, durationUsec: 1, stdoutBytes: 0,
            stderrBytes: 0, storedBytes: 0, droppedBytes: 0, outputPruned: false, configDigest: "0123456789abcdef",
            reason: nil, argvTruncated: argvTruncated, envKeysTruncated: envKeysTruncated)
    }

    @Test func aCutArgvIsMarkedAndAWholeOneIsNot() {
        #expect(HistoryFormat.command(Self.info("a")) == "echo abc")
        #expect(HistoryFormat.command(Self.info("a", argvTruncated: true)) == "echo abc … (argv cut)")
        let status = StatusCommand.describe(Self.info("a", argvTruncated: true, envKeysTruncated: true))
        #expect(status.contains("command:     echo abc … (argv cut)"), "\(status)")
        #expect(status.contains("LANG, … (cut)") && status.contains("RUNVOY_ARGV"), "\(status)")
        let whole = StatusCommand.describe(Self.info("a"))
        #expect(!whole.contains("(cut)") && !whole.contains("argv cut") && !whole.contains("RUNVOY_ARGV"))
    }

    @Test func theHintNamesTheLastExecutionShownOnlyWhenThereAreMore() {
        let page = [Self.info("01jdx7y3m1qk2f6e8v9w0zabcd"), Self.info("01jdx7y3m1qk2f6e8v9w0zabcc")]
        #expect(
            ListCommand.moreHint(ListResult(executions: page, more: true))
                == "more executions match: add --before 01jdx7y3m1qk2f6e8v9w0zabcc to list the next ones")
        #expect(ListCommand.moreHint(ListResult(executions: page, more: false)) == nil)
        #expect(ListCommand.moreHint(ListResult(executions: [], more: true)) == nil)
    }
}
