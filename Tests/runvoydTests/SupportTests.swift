import Foundation
import Glibc
import PropertyBased
import RunvoyKit
import Testing

@testable import runvoyd

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
            #expect(catalog.contains("-- \(kind.messageID)\n"), "no catalog entry for \(kind.rawValue)")
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
