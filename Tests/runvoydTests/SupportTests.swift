import Foundation
import Glibc
import PropertyBased
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
