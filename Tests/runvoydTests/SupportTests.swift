import Foundation
import Glibc
import PropertyBased
import RunvoyKit
import Testing

@testable import RunvoyDaemon

struct SignalNameTests {
    @Test(arguments: [("INT", SIGINT), ("SIGINT", SIGINT), ("term", SIGTERM), ("9", SIGKILL), ("PIPE", SIGPIPE)])
    func parsesNamesAndNumbers(text: String, expected: Int32) {
        #expect(SignalName.parse(text) == expected)
    }

    @Test(arguments: ["", "NOPE", "0", "-1", "65", "SIG"])
    func rejectsOthers(text: String) {
        #expect(SignalName.parse(text) == nil)
    }
}

struct ExecutionIDTests {
    @Test func idsAreValidUniqueAndSortByTime() {
        var previous = ""
        var seen = Set<String>()
        for step in 0..<1000 {
            let id = ExecutionID.make(milliseconds: 1_700_000_000_000 + UInt64(step))
            #expect(ExecutionID.isValid(id))
            #expect(id > previous)
            #expect(seen.insert(id).inserted)
            previous = id
        }
    }

    @Test func rejectsMalformedIDs() {
        #expect(!ExecutionID.isValid("short"))
        #expect(!ExecutionID.isValid(String(repeating: "u", count: 26)))  // u is not in Crockford base32
        #expect(!ExecutionID.isValid("../../../../../../etc/passwd"))
    }
}

struct CommandResolverTests {
    @Test func findsProgramsOnThePath() {
        #expect(CommandResolver.resolve("sh", searchPath: "/nonexistent:/bin", workingDirectory: "/") == "/bin/sh")
        #expect(CommandResolver.resolve("sh", searchPath: nil, workingDirectory: "/") != nil)
    }

    @Test func takesNamesWithASlashAsGiven() {
        #expect(CommandResolver.resolve("/bin/sh", searchPath: "", workingDirectory: "/") == "/bin/sh")
        #expect(CommandResolver.resolve("bin/sh", searchPath: "", workingDirectory: "/") == "/bin/sh")
    }

    @Test func refusesWhatIsNotAnExecutableFile() {
        #expect(CommandResolver.resolve("no-such-program-xyz", searchPath: nil, workingDirectory: "/") == nil)
        #expect(CommandResolver.resolve("/etc/passwd", searchPath: nil, workingDirectory: "/") == nil)
        #expect(CommandResolver.resolve("/tmp", searchPath: nil, workingDirectory: "/") == nil)
        #expect(CommandResolver.resolve("", searchPath: nil, workingDirectory: "/") == nil)
        // Relative PATH entries are ignored, like a careful shell would.
        #expect(CommandResolver.resolve("sh", searchPath: "bin:.", workingDirectory: "/") == nil)
    }
}

struct JournalFieldTests {
    @Test func logMetadataKeysBecomeValidJournalFieldNames() {
        #expect(JournalLogHandler.fieldName("execution-id") == "EXECUTION_ID")
        #expect(JournalLogHandler.fieldName("uid") == "UID")
    }

    @Test func everyAuditKindHasADistinctMessageID() {
        let ids = AuditEvent.Kind.allCases.map(\.messageID)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
    }

    @Test func auditEntriesCarryTheFixedFields() {
        let event = AuditEvent(.decision, priority: 4, message: "m", fields: [("DECISION", "deny")])
        let fields = Dictionary(event.journalFields, uniquingKeysWith: { $1 })
        #expect(fields["SYSLOG_IDENTIFIER"] == "runvoyd")
        #expect(fields["MESSAGE_ID"] == AuditEvent.Kind.decision.messageID)
        #expect(fields["PRIORITY"] == "4")
        #expect(fields["RUNVOY_DECISION"] == "deny")
        #expect(fields["RUNVOY_EVENT"] == "decision")
    }
}

struct JournalCatalogTests {
    @Test func everyMessageIDHasACatalogEntry() throws {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let catalog = try String(
            contentsOf: url.appendingPathComponent("packaging/systemd/runvoyd.catalog"), encoding: .utf8)
        for kind in AuditEvent.Kind.allCases {
            // journalctl reads an entry only where its "-- ID" line follows an empty line (or starts the file).
            #expect(catalog.contains("\n\n-- \(kind.messageID)\n"), "no catalog entry for \(kind.rawValue)")
        }
    }
}

/// Issue 10, item 5: one user's refusals are recorded in full up to a limit per window, then counted.
struct RefusalWindowsTests {
    @Test func theFirstRefusalsAreRecordedTheRestCountedAndSummarizedWhenTheWindowEnds() {
        var windows = RefusalWindows(period: .seconds(60))
        let start = ContinuousClock.now
        for _ in 0..<3 {
            #expect(windows.admit(uid: 7, user: "eve", limit: 3, now: start) == .record(summary: nil))
        }
        for second in 1...10 {
            #expect(windows.admit(uid: 7, user: "eve", limit: 3, now: start + .seconds(second)) == .suppress)
        }
        // Another user has a window of their own.
        #expect(windows.admit(uid: 8, user: "bob", limit: 3, now: start + .seconds(5)) == .record(summary: nil))
        #expect(windows.expire(now: start + .seconds(59)).isEmpty)
        // The next refusal after the window carries the summary of the one before.
        let next = windows.admit(uid: 7, user: "eve", limit: 3, now: start + .seconds(61))
        #expect(
            next == .record(summary: .init(uid: 7, user: "eve", suppressed: 10, elapsed: .seconds(61))))
        // Windows that counted nothing end silently; at shutdown every window is summarized.
        #expect(windows.expire(now: start + .seconds(70)).isEmpty)
        #expect(windows.count == 1)
        _ = windows.admit(uid: 7, user: "eve", limit: 1, now: start + .seconds(80))
        #expect(windows.expire(now: start + .seconds(81), all: true).map(\.suppressed) == [1])
        #expect(windows.count == 0)
    }

    @Test func aLongRefusedArgvIsRecordedAsAPrefixWithItsLengthAndDigest() {
        let argv = ["cat"] + (0..<2000).map { "ä-\($0)" }
        let fields = Dictionary(uniqueKeysWithValues: RefusalThrottle.boundedArgv(argv, limit: 1024))
        let text = JSONText.array(argv)
        #expect(fields["ARGV"]!.utf8.count <= 1024 + "…".utf8.count)
        #expect(text.hasPrefix(fields["ARGV"]!.dropLast()))
        #expect(fields["ARGV_BYTES"] == String(text.utf8.count) && fields["ARGV_COUNT"] == "2001")
        #expect(fields["ARGV_SHA256"]?.count == 64)
        #expect(RefusalThrottle.boundedArgv(["true"], limit: 1024).map(\.1) == [#"["true"]"#])
    }
}

/// Review of issue 11, item 3: a lost execution's process is killed only when it is exactly the process that was
/// spawned (same boot, same start time in ticks, same uid, its own process group), never on pid and a clock window.
struct LostProcessTests {
    @Test func onlyTheVerySameProcessIsKilled() throws {
        // A session (and group) leader of its own, as a command is: setsid -f forks, and the child writes its pid.
        let file = "/tmp/runvoy-lost-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(file) }
        // (Foundation's Process would wait for the whole session; system() returns once setsid has forked.)
        let command = "setsid -f /bin/sh -c 'echo $$ > \(file).tmp && mv \(file).tmp \(file) && exec sleep 30'"
        #expect(system(command + " </dev/null >/dev/null 2>&1") == 0)
        var pid: Int32?
        for _ in 0..<500 where pid == nil {
            pid = (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int32($0.filter(\.isNumber)) }
            if pid == nil { usleep(10_000) }
        }
        let leader = try #require(pid)
        defer { kill(leader, SIGKILL) }
        let found = try #require(LostProcess.read(leader))
        #expect(found.pgid == leader)
        let boot = try #require(LostProcess.bootID)
        #expect(LostProcess.end(pid: leader, startTicks: found.startTicks + 1, bootID: boot, uid: found.uid) == .gone)
        #expect(
            LostProcess.end(pid: leader, startTicks: found.startTicks, bootID: "another-boot", uid: found.uid) == .gone)
        #expect(LostProcess.end(pid: leader, startTicks: found.startTicks, bootID: boot, uid: found.uid + 1) == .gone)
        #expect(kill(leader, 0) == 0)
        #expect(LostProcess.end(pid: leader, startTicks: found.startTicks, bootID: boot, uid: found.uid) == .killed)
        // Gone, or a zombie waiting for whoever adopted it.
        var state = ""
        for _ in 0..<500 {
            let stat = (try? String(contentsOfFile: "/proc/\(leader)/stat", encoding: .utf8)) ?? ""
            state = stat.split(separator: ")").last.map { String($0.prefix(2)) } ?? ""
            if stat.isEmpty || state == " Z" { break }
            usleep(10_000)
        }
        #expect(state == " Z" || state.isEmpty, "state '\(state)'")
    }
}
