import Foundation
import Glibc
import RunvoyKit
import RunvoyStore
import Testing

/// Figures for docs/BENCHMARKS.md (issue 18), printed, never checked: the time and the daemon's memory of `list`
/// with `limit` 1000 over 1000 executions of 600 KiB of arguments each, and of paging through all of them with
/// `before`. It writes a history of 600 MB, so it runs only when asked:
/// `RUNVOY_LIST_FIGURES=1 scripts/with-private-journal swift test --skip-build --filter ListCostFigures`.
@Suite(
    .serialized,
    .enabled(
        if: Harness.isRoot && ProcessInfo.processInfo.environment["RUNVOY_LIST_FIGURES"] == "1",
        "figures on demand: RUNVOY_LIST_FIGURES=1, as root"))
struct ListCostFigures {
    static let executions = 1000

    /// `VmRSS` and `VmHWM` of a process, in KiB.
    static func memory(_ pid: pid_t) -> (rss: Int, peak: Int) {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Int {
            let line = text.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// One `list` reply, read raw with no timeout: its size and what it lists.
    static func list(
        _ connection: RawConnection, limit: Int = 1000, before: String?
    ) throws -> (bytes: Int, ids: [String], more: Bool) {
        let cursor = before.map { #","before":"\#($0)""# } ?? ""
        try connection.sendFrame(#"{"v":1,"id":1,"method":"list","params":{"limit":\#(limit)\#(cursor)}}"#)
        let frame = try #require(try connection.readRawFrame())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(frame.payload)) as? [String: Any])
        let result = try #require(object["result"] as? [String: Any], "\(object["error"] ?? "")")
        let ids = (result["executions"] as? [[String: Any]] ?? []).compactMap { $0["execution_id"] as? String }
        return (frame.payload.count, ids, result["more"] as? Bool ?? false)
    }

    @Test func listOfAThousandExecutionsWithLongArgv() throws {
        var filled: Result<Void, any Error> = .success(())
        let daemon = try DaemonFixture(config: { directory in
            // The history is written before the daemon opens it.
            filled = Result { try Self.fill(stateDirectory: directory + "/state") }
            return DaemonFixture.standardConfig(directory: directory)
        })
        defer { daemon.stop() }
        try filled.get()
        let pid = daemon.process.pid
        let connection = try RawConnection(path: daemon.socketPath)
        var forever = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(connection.fd, SOL_SOCKET, SO_RCVTIMEO, &forever, socklen_t(MemoryLayout<timeval>.size))
        // A first request, so that what the daemon keeps for any request is in its resident set already.
        _ = try Self.list(RawConnection(path: daemon.socketPath), limit: 1, before: nil)
        let idle = Self.memory(pid)
        _ = try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
        let start = ContinuousClock.now
        let first = try Self.list(connection, before: nil)
        let firstTime = ContinuousClock.now - start
        let afterFirst = Self.memory(pid)
        var all = first.ids
        var pages = 1
        var more = first.more
        while more, let last = all.last {
            let page = try Self.list(connection, before: last)
            print("LIST-PAGE before \(last): \(page.bytes) bytes, \(page.ids.count) executions, more \(page.more)")
            all += page.ids
            more = page.more
            pages += 1
        }
        let allTime = ContinuousClock.now - start
        let afterAll = Self.memory(pid)
        print(
            """
            LIST-FIGURES first reply: \(first.bytes) bytes, \(first.ids.count) executions, more \(first.more), \
            \(firstTime); all \(all.count) executions (\(Set(all).count) distinct) in \(pages) replies, \(allTime); \
            daemon RSS idle \(idle.rss) KiB (peak \(idle.peak)), peak during the first reply \(afterFirst.peak) KiB, \
            RSS after it \(afterFirst.rss) KiB, peak over all replies \(afterAll.peak) KiB, RSS after \(afterAll.rss) KiB
            """)
    }

    /// 1000 finished executions of `true` with six arguments of 100 KiB.
    static func fill(stateDirectory: String) throws {
        let store = try ExecutionStore(stateDirectory: stateDirectory)
        let argv = ["true"] + Array(repeating: String(repeating: "a", count: 100 << 10), count: 6)
        // Recent, so that retention (`history.max_age`) leaves them alone while the figures are taken.
        let start = Int64(Date().timeIntervalSince1970 * 1000) - Int64(executions) - 60_000
        let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
        let rows = (0..<executions).map { index in
            // Ids in the shape the daemon makes: the time, then (here) a counter.
            let time = String((0..<10).map { alphabet[Int((start + Int64(index)) >> (45 - 5 * $0)) & 31] })
            let tail = String(String(index, radix: 32).map { alphabet[Int(String($0), radix: 32)!] })
            let id = time + String(repeating: "0", count: 16 - tail.count) + tail
            return ExecutionInfo(
                executionId: id, status: .succeeded, callerUid: 0, callerUser: "root", callerPid: 1,
                executor: "default", runAs: "nobody:nogroup", argv: argv, workingDirectory: "/", envKeys: [], pid: 7,
                exitCode: 0, signal: nil, createdAtMs: start + Int64(index), startedAtMs: start + Int64(index),
                finishedAtMs: start + Int64(index), durationUsec: 1, stdoutBytes: 0, stderrBytes: 0, storedBytes: 0,
                droppedBytes: 0, outputPruned: false, configDigest: "0123456789abcdef", reason: nil)
        }
        try store.insertMany(rows)
    }
}
