import Foundation
import PropertyBased
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// `list` in pages (issue 18): each reply stays within the frame limit, says `more` while executions remain, and
/// `before` (the last execution id of a page) continues with nothing repeated and nothing missed.
struct ListPagingTests {
    /// The argv bytes (each argument with its NUL) one execution in a `list` reply carries (PROTOCOL.md).
    static let listArgvBytes = 4 << 10

    /// A history row of `nobody` (the caller of these tests) with `argvBytes` bytes of control characters in
    /// its argv (each `\u0001` in JSON, so a page fills up after a few dozen of them).
    static func row(_ id: String, createdAtMs: Int64, argvBytes: Int) -> ExecutionInfo {
        var argv = ["true"]
        var left = argvBytes
        while left > 0 {
            let size = min(left, 100_000)
            argv.append(String(repeating: "\u{1}", count: size))
            left -= size
        }
        return ExecutionInfo(
            executionId: id, status: .succeeded, callerUid: 65534, callerUser: "nobody", callerPid: 1,
            executor: "default", runAs: "nobody:nogroup", argv: argv, workingDirectory: "/", envKeys: [], pid: 7,
            exitCode: 0, signal: nil, createdAtMs: createdAtMs, startedAtMs: createdAtMs, finishedAtMs: createdAtMs,
            durationUsec: 1, stdoutBytes: 0, stderrBytes: 0, storedBytes: 0, droppedBytes: 0, outputPruned: false,
            configDigest: "0123456789abcdef", reason: nil)
    }

    /// One page: the ids it lists, whether it says `more`, and its size.
    struct Page {
        var ids: [String]
        var more: Bool?
        var bytes: Int
        var truncated: [Bool]
    }

    static func page(_ connection: InProcessConnection, limit: Int, before: String?) async throws -> Page {
        let cursor = before.map { #","before":"\#($0)""# } ?? ""
        let reply = await connection.call(#"{"v":1,"id":1,"method":"list","params":{"limit":\#(limit)\#(cursor)}}"#)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any])
        let result = try #require(object["result"] as? [String: Any], "\(reply.prefix(300))")
        let executions = try #require(result["executions"] as? [[String: Any]])
        return Page(
            ids: executions.compactMap { $0["execution_id"] as? String }, more: result["more"] as? Bool,
            bytes: reply.utf8.count, truncated: executions.map { $0["argv_truncated"] as? Bool ?? false })
    }

    /// Any history (argv sizes up to 40 KB, several executions in the same millisecond), read with any `limit`:
    /// the pages, joined, are the history newest first, each page at most `limit` long and within 1 MiB, and only
    /// the last says no `more`.
    @Test func pagingWithBeforeReturnsEveryExecutionOnceInOrder() async {
        let history = zip(Gen.int(in: 0...40_000), Gen.int(in: 0...2)).array(of: 1...120)
        await propertyCheck(count: 12, input: history, Gen.int(in: 1...80)) { rows, limit in
            try await InProcessConnection.with(caller: RouterTests.nobody) { connection in
                var now: Int64 = 1_750_000_000_000
                var infos: [ExecutionInfo] = []
                for (argvBytes, step) in rows {
                    now += Int64(step)
                    let id = ExecutionID.make(milliseconds: UInt64(now))
                    infos.append(Self.row(id, createdAtMs: now, argvBytes: argvBytes))
                }
                try connection.executions.store.insertMany(infos)
                let expected = infos.sorted { ($0.createdAtMs, $0.executionId) > ($1.createdAtMs, $1.executionId) }
                var seen: [String] = []
                var before: String?
                var pages = 0
                while true {
                    let page = try await Self.page(connection, limit: limit, before: before)
                    pages += 1
                    #expect(page.bytes <= 1 << 20, "a page of \(page.bytes) bytes")
                    #expect(page.ids.count <= limit && !page.ids.isEmpty)
                    for (id, truncated) in zip(page.ids, page.truncated) {
                        let argvBytes = infos.first { $0.executionId == id }?.argv.reduce(0) {
                            $0 + $1.utf8.count + 1
                        }
                        #expect(truncated == ((argvBytes ?? 0) > Self.listArgvBytes))
                    }
                    seen += page.ids
                    guard page.more == true, let last = page.ids.last, pages <= rows.count else {
                        #expect(page.more == false)
                        break
                    }
                    before = last
                }
                #expect(seen == expected.map(\.executionId))
            }
        }
    }

    @Test func aBeforeThatIsNotAnExecutionIDIsAnInvalidArgument() async throws {
        try await InProcessConnection.with(caller: RouterTests.nobody) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"list","params":{"before":"../x"}}"#,
                #"{"error":{"code":"invalid_argument","message":"before: '../x' is not an execution id (26 characters of base32)"},"id":1}"#
            )
        }
    }

    /// An id that is no longer in the history (retention removed it) still pages: from the time in the id.
    @Test func aBeforeOfAnExecutionNoLongerInTheHistoryPagesFromTheTimeInItsID() async throws {
        try await InProcessConnection.with(caller: RouterTests.nobody) { connection in
            let start: Int64 = 1_750_000_000_000
            let rows = [0, 10, 20].map {
                Self.row(ExecutionID.make(milliseconds: UInt64(start + $0)), createdAtMs: start + $0, argvBytes: 3)
            }
            try connection.executions.store.insertMany(rows)
            let gone = ExecutionID.make(milliseconds: UInt64(start + 15))
            let page = try await Self.page(connection, limit: 50, before: gone)
            #expect(page.ids == [rows[1].executionId, rows[0].executionId])
            #expect(page.more == false)
            #expect(page.truncated == [false, false])
        }
    }
}
