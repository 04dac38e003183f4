import Foundation
import PropertyBased
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// What a reply carries of an execution (issue 18, docs/PROTOCOL.md "What a reply carries of an execution"):
/// argv and environment names within a byte budget, said when cut, and never more than the budget.
struct ReplyBoundsTests {
    static func info(argv: [String], envKeys: [String] = [], reason: String? = nil) -> ExecutionInfo {
        ExecutionInfo(
            executionId: "01jdx7y3m1qk2f6e8v9w0zabcd", status: .failed, callerUid: 0, callerUser: "root",
            callerPid: 1, executor: "default", runAs: "nobody:nogroup", argv: argv, workingDirectory: "/",
            envKeys: envKeys, pid: nil, exitCode: 1, signal: nil, createdAtMs: 1, startedAtMs: nil, finishedAtMs: nil,
            durationUsec: nil, stdoutBytes: 0, stderrBytes: 0, storedBytes: 0, droppedBytes: 0, outputPruned: false,
            configDigest: "0123456789abcdef", reason: reason)
    }

    static func size(_ items: [String]) -> Int { items.reduce(0) { $0 + $1.utf8.count + 1 } }

    @Test func whatFitsIsSentWhole() {
        let info = Self.info(argv: ["ls", "-l", "/"], envKeys: ["LANG"], reason: "why")
        #expect(info.bounded(.listed) == info)
        #expect(!info.bounded(.single).argvTruncated && !info.bounded(.single).envKeysTruncated)
    }

    @Test func argvIsCutAfterTheArgumentThatCrossesTheBudgetWhichIsShortened() {
        let bounds = ReplyBounds(argvBytes: 20, envKeyBytes: 8)
        // "echo" 5, "abcdef" 7: 12 used, 8 left: "ghijklmnop" is shortened to 7 bytes, "last" left out.
        let cut = Self.info(argv: ["echo", "abcdef", "ghijklmnop", "last"], envKeys: ["AB", "CD", "EFGH"])
            .bounded(bounds)
        #expect(cut.argv == ["echo", "abcdef", "ghijklm"])
        #expect(cut.argvTruncated)
        // Names are kept whole: "AB" 3 and "CD" 3 fit, "EFGH" 5 does not.
        #expect(cut.envKeys == ["AB", "CD"])
        #expect(cut.envKeysTruncated)
        // A budget already used up by whole arguments leaves no empty shortened one.
        let exact = Self.info(argv: ["1234", "5678", "x"]).bounded(ReplyBounds(argvBytes: 11, envKeyBytes: 1))
        #expect(exact.argv == ["1234", "5678"] && exact.argvTruncated)
    }

    @Test func aShortenedArgumentEndsOnACharacterBoundary() {
        // "é" is 2 bytes, "€" 3: 10 bytes of budget hold "a" + NUL, then 8 bytes of "ééé€": "ééé" (6), not half a "€".
        let cut = Self.info(argv: ["a", "ééé€€"]).bounded(ReplyBounds(argvBytes: 10, envKeyBytes: 1))
        #expect(cut.argv == ["a", "ééé"])
        #expect(ReplyText.prefix("€€", bytes: 2) == "")
        #expect(ReplyText.prefix("a€", bytes: 4) == "a€")
    }

    @Test func aLongReasonIsShortenedAndMarked() {
        let reason = String(repeating: "r", count: ReplyBounds.reasonBytes + 10)
        let cut = Self.info(argv: ["x"], reason: reason).bounded(.single)
        #expect(cut.reason == String(repeating: "r", count: ReplyBounds.reasonBytes) + "…")
    }

    /// Any argv: what is sent is a prefix of it (the last argument possibly shortened), within the budget, and
    /// `argv_truncated` is true exactly when it is not all of it.
    @Test func theSentArgvIsAPrefixWithinTheBudget() async {
        let pieces = ["", "a", "é", "€", "\u{1}", "𝄞"]
        let word = Gen.int(in: 0...5).map { pieces[$0] }.array(of: 0...40).map { $0.joined() }
        await propertyCheck(count: 300, input: word.array(of: 0...30), Gen.int(in: 1...200)) { argv, budget in
            let cut = Self.info(argv: argv).bounded(ReplyBounds(argvBytes: budget, envKeyBytes: budget))
            #expect(Self.size(cut.argv) <= budget)
            #expect(cut.argvTruncated == (cut.argv != argv))
            let whole = cut.argv.dropLast()
            #expect(Array(argv.prefix(whole.count)) == Array(whole))
            if let last = cut.argv.last { #expect(argv[cut.argv.count - 1].hasPrefix(last)) }
            if !cut.argvTruncated { #expect(Self.size(argv) <= budget) }
        }
    }

    /// The worst case the docs promise: an execution with a whole `max_argv_bytes` of control characters is a few
    /// hundred KiB of JSON in a single reply, and a few dozen in a `list`.
    @Test func anExecutionObjectOfControlCharactersStaysFarUnderAFrame() throws {
        let argv = Array(repeating: String(repeating: "\u{1}", count: (128 << 10) - 1), count: 8)
        let keys = (0..<256).map { "K\($0)" + String(repeating: "_", count: 1000) }
        let info = Self.info(argv: argv, envKeys: keys, reason: String(repeating: "\u{2}", count: 100_000))
        let single = try Frame.payload(info.bounded(.single)).count
        let listed = try Frame.payload(info.bounded(.listed)).count
        #expect(single <= 512 << 10, "\(single) bytes")
        #expect(listed <= 64 << 10, "\(listed) bytes")
    }

    /// `status` adds hook runs to the worst execution object: their output counts by its encoded size (a control
    /// byte is six bytes of JSON), so the reply stays under a frame (review of hooks, H4).
    @Test func aStatusWithHookRunsOfControlCharactersStaysUnderAFrame() throws {
        let argv = Array(repeating: String(repeating: "\u{1}", count: (128 << 10) - 1), count: 8)
        let keys = (0..<256).map { "K\($0)" + String(repeating: "_", count: 1000) }
        var info = Self.info(argv: argv, envKeys: keys, reason: String(repeating: "\u{2}", count: 100_000))
        let run = HookRunInfo(
            hook: String(repeating: "h", count: 64), event: "post_exec", user: "runvoy-hooks", startedAtMs: 1,
            durationUsec: 1, exitCode: 1, signal: nil, timedOut: false, outcome: "veto",
            reason: String(repeating: "r", count: HookRunner.maxReason),
            output: String(repeating: "\u{1}", count: 64 << 10),
            outputDropped: 0, approvalId: nil)
        info.hooks = RequestContext.budgeted(Array(repeating: run, count: 8), budget: RequestContext.hookOutputBudget)
        let size = try Frame.payload(info.bounded(.single)).count
        #expect(size <= 1 << 20, "\(size) bytes")
        #expect(info.hooks?.filter { !$0.output.isEmpty }.count == 0)
        let slashes = String(repeating: "/", count: 1000)
        #expect(RequestContext.jsonSize(slashes + "\u{7}é") == 2000 + 6 + 2)
    }

    @Test func anExecutionIDHoldsItsCreationTime() async {
        await propertyCheck(count: 200, input: Gen<UInt64>.value(in: 0...((1 << 48) - 1))) { milliseconds in
            let id = ExecutionID.make(milliseconds: milliseconds)
            #expect(ExecutionID.milliseconds(id) == Int64(milliseconds))
        }
        #expect(ExecutionID.milliseconds("not an id") == nil)
    }

    @Test func aListPageAlwaysTakesItsFirstExecutionAndStopsAtItsBudget() throws {
        let info = Self.info(argv: ["true"])
        let size = try Frame.payload(info).count + 1
        var page = ListPage(budget: size * 2)
        #expect(page.add(info) && page.add(info) && !page.add(info))
        var tiny = ListPage(budget: 1)
        #expect(tiny.add(info) && !tiny.add(info))
        #expect(tiny.executions.count == 1)
    }

    static func request(argv: [String], envKeys: [String] = []) -> ApprovalInfo {
        ApprovalInfo(
            id: "01jdx7y3m1qk2f6e8v9w0zabcd", kind: "exec", state: .pending, requesterUid: 1000, requester: "alice",
            executor: "prod", runAs: "nobody:nogroup", command: "/usr/bin/echo", argv: argv, cwd: "/",
            envKeys: envKeys, secrets: [], terminal: false, timeoutMs: nil, reason: "INC-1", createdAtMs: 1,
            expiresAtMs: 2, required: 1, approvers: ApproverList(users: ["bob"]), answers: [],
            digest: "sha256:00", decision: nil, mayAnswer: true)
    }

    /// A request for approval is cut as an execution is, and says so (`runvoyctl approve` then refuses it).
    @Test func aRequestForApprovalIsCutWithinItsBudgetAndSaysSo() {
        let whole = Self.request(argv: ["echo", "hi"], envKeys: ["PATH"])
        #expect(whole.bounded(.listed) == whole && whole.isWhole)
        let bounds = ReplyBounds(argvBytes: 8, envKeyBytes: 4)
        let cut = Self.request(argv: ["echo", "abcdef", "x"], envKeys: ["AB", "CD"]).bounded(bounds)
        #expect(cut.argv == ["echo", "ab"] && cut.argvTruncated)
        #expect(cut.envKeys == ["AB"] && cut.envKeysTruncated)
        #expect(!cut.isWhole)
        let long = Self.request(argv: Array(repeating: String(repeating: "\u{1}", count: 100_000), count: 10))
        #expect(Self.size(long.bounded(.single).argv) <= ReplyBounds.single.argvBytes)
        #expect(Self.size(long.bounded(.listed).argv) <= ReplyBounds.listed.argvBytes)
    }

    /// A listing of requests stops at its budget (the first always) and then says `more`.
    @Test func aPageOfRequestsStopsAtItsBudgetAndSaysMore() throws {
        let request = Self.request(argv: ["true"])
        let size = try Frame.payload(request).count + 1
        let three = Array(repeating: request, count: 3)
        let page = ApprovalsHandler.page(three, more: false, budget: size * 2)
        #expect(page.requests.count == 2 && page.more)
        #expect(ApprovalsHandler.page(three, more: false, budget: size * 3) == ApprovalsResult(requests: three))
        #expect(ApprovalsHandler.page(three, more: true, budget: size * 3).more)
        #expect(ApprovalsHandler.page(three, more: false, budget: 1).requests.count == 1)
    }

    /// A reply from a daemon before the budgets (no `argv_truncated`, `env_keys_truncated`, `more`) reads as whole.
    @Test func aReplyWithoutTheNewMembersReadsAsWhole() throws {
        var object = try #require(
            try JSONSerialization.jsonObject(with: Data(Frame.payload(Self.request(argv: ["true"])))) as? [String: Any])
        #expect(object["argv_truncated"] as? Bool == false && object["env_keys_truncated"] as? Bool == false)
        object["argv_truncated"] = nil
        object["env_keys_truncated"] = nil
        let old = try JSONSerialization.data(withJSONObject: ["requests": [object]])
        let result = try JSONDecoder().decode(ApprovalsResult.self, from: old)
        #expect(result == ApprovalsResult(requests: [Self.request(argv: ["true"])]))
        #expect(!result.more && result.requests[0].isWhole)
    }
}
