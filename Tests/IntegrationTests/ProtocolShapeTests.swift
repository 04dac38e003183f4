import Foundation
import Glibc
import Testing

/// docs/PROTOCOL.md and the daemon agree on the shape of every message: each documented example (the JSON
/// blocks and the inline replies) has exactly the members, and the JSON types, of what the daemon sends for
/// that method, and every execution object has exactly the members of the documented table. A member that is
/// absent where the document shows `null` (or the other way round) fails here.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class ProtocolShapeTests {
    let daemon: DaemonFixture
    let doc: String

    init() throws {
        daemon = try DaemonFixture()
        doc = try String(contentsOfFile: Harness.packageRoot + "/docs/PROTOCOL.md", encoding: .utf8)
    }

    deinit { daemon.stop() }

    /// The text of the section under `### \`method\``, up to the next heading.
    func section(_ method: String) throws -> String {
        guard let start = doc.range(of: "### `\(method)`\n") else { throw HarnessError("no section \(method)") }
        let rest = doc[start.upperBound...]
        let end = rest.range(of: "\n#")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }

    /// JSON objects of a section: its ```json blocks (one object per block, or one per line) and its inline
    /// `{"id": ...}` examples.
    func examples(_ method: String) throws -> [[String: Any]] {
        let text = try section(method)
        var sources: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "```json\n"), let close = rest[open.upperBound...].range(of: "```") {
            let block = String(rest[open.upperBound..<close.lowerBound])
            if let whole = try? JSONSerialization.jsonObject(with: Data(block.utf8)) as? [String: Any] {
                _ = whole
                sources.append(block)
            } else {
                sources += block.split(separator: "\n").map(String.init)
            }
            rest = rest[close.upperBound...]
        }
        var inline = Substring(text)
        while let open = inline.range(of: "`{\"id\""), let close = inline[open.upperBound...].range(of: "}`") {
            sources.append(String(inline[inline.index(after: open.lowerBound)..<inline.index(after: close.lowerBound)]))
            inline = inline[close.upperBound...]
        }
        return sources.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// The members of the execution object, from its table.
    var executionMembers: Set<String> {
        guard let start = doc.range(of: "An **execution object**") else { return [] }
        let table = doc[start.upperBound...].prefix { _ in true }
        var members = Set<String>()
        for line in table.split(separator: "\n").drop(while: { !$0.hasPrefix("| member") }).dropFirst(2) {
            guard line.hasPrefix("|") else { break }
            let first = line.split(separator: "|").first ?? ""
            for name in first.split(separator: ",") {
                members.insert(name.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["`"]))
            }
        }
        return members
    }

    /// Differences between a documented example and an actual message: members, and JSON types where neither
    /// is null. `optional` members may be missing from either.
    static func differences(_ doc: Any, _ actual: Any, path: String = "", optional: Set<String> = []) -> [String] {
        switch (doc, actual) {
        case (let d as [String: Any], let a as [String: Any]):
            var issues: [String] = []
            let missing = Set(d.keys).subtracting(a.keys).subtracting(optional)
            let extra = Set(a.keys).subtracting(d.keys).subtracting(optional)
            if !missing.isEmpty { issues.append("\(path): documented but not sent: \(missing.sorted())") }
            if !extra.isEmpty { issues.append("\(path): sent but not documented: \(extra.sorted())") }
            for (key, value) in d {
                if let other = a[key] {
                    issues += differences(value, other, path: path + "." + key, optional: optional)
                }
            }
            return issues
        case (let d as [Any], let a as [Any]):
            guard let first = d.first, let other = a.first else { return [] }
            return differences(first, other, path: path + "[0]", optional: optional)
        case (is NSNull, _), (_, is NSNull):
            return []
        default:
            return kind(doc) == kind(actual) ? [] : ["\(path): documented as \(kind(doc)), sent as \(kind(actual))"]
        }
    }

    static func kind(_ value: Any) -> String {
        switch value {
        case let number as NSNumber:
            return String(cString: number.objCType) == "c" ? "boolean" : "number"
        case is String: return "string"
        case is [Any]: return "array"
        case is [String: Any]: return "object"
        default: return "\(type(of: value))"
        }
    }

    func call(
        _ connection: RawConnection, _ id: Int, _ method: String, _ params: String = "{}"
    ) throws
        -> [[String: Any]]
    {
        try connection.sendFrame(#"{"v":1,"id":\#(id),"method":"\#(method)","params":\#(params)}"#)
        var frames: [[String: Any]] = []
        while let frame = try connection.readFrame() {
            frames.append(frame)
            if frame["event"] == nil || frame["event"] as? String == "exit" { break }
        }
        return frames
    }

    func expectShape(
        _ method: String, _ actual: [String: Any], optional: Set<String> = [], where match: ([String: Any]) -> Bool
    ) throws {
        let documented = try examples(method).filter(match)
        #expect(!documented.isEmpty, "no documented example for \(method)")
        for example in documented {
            let issues = Self.differences(example, actual, optional: optional.union(["reason"]))
            #expect(issues.isEmpty, "\(method): \(issues)")
        }
    }

    @Test func everyDocumentedExampleHasTheShapeOfWhatTheDaemonSends() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        let isResult = { (frame: [String: Any]) in frame["result"] != nil }
        for method in ["hello", "ping", "whoami", "capabilities", "users", "reload"] {
            let reply = try #require(try call(connection, 1, method).last)
            try expectShape(method, reply, where: isResult)
        }
        let explain = try #require(try call(connection, 2, "explain", #"{"argv":["id"]}"#).last)
        // `argv` and `trusted` are sent for a playbook's step only (PlaybookExplainTests checks them there).
        try expectShape("explain", explain, optional: ["argv", "trusted"], where: isResult)

        let exec = try call(connection, 3, "exec", #"{"argv":["echo","hi"]}"#)
        for event in ["started", "output", "exit"] {
            let frame = try #require(exec.first { $0["event"] as? String == event })
            try expectShape("exec", frame) { $0["event"] as? String == event }
        }
        let detached = try call(connection, 4, "exec", #"{"argv":["true"],"detach":true}"#)
        try expectShape("exec", try #require(detached.last), where: isResult)
        let id = try #require(exec.first?["execution_id"] as? String)

        // The execution object, wherever it is sent.
        let status = try #require(try call(connection, 5, "status", #"{"execution_id":"\#(id)"}"#).last)
        let execution = try #require(status["result"] as? [String: Any])
        #expect(Set(execution.keys) == executionMembers)
        let list = try #require(try call(connection, 6, "list", #"{"limit":1}"#).last)
        try expectShape("list", list, where: isResult)
        let listed = try #require(((list["result"] as? [String: Any])?["executions"] as? [[String: Any]])?.first)
        #expect(Set(listed.keys) == executionMembers)

        try connection.sendFrame(#"{"v":1,"id":7,"method":"logs","params":{"execution_id":"\#(id)"}}"#)
        var logs: [[String: Any]] = []
        while let frame = try connection.readFrame() {
            logs.append(frame)
            if frame["event"] == nil { break }
        }
        try expectShape("logs", try #require(logs.first { $0["event"] as? String == "output" })) {
            $0["event"] as? String == "output"
        }
        let logsResult = try #require((logs.last?["result"] as? [String: Any])?["execution"] as? [String: Any])
        #expect(Set(logsResult.keys) == executionMembers)

        let sleeper = try call(connection, 8, "exec", #"{"argv":["sleep","30"],"detach":true}"#)
        let sleeperID = try #require((sleeper.last?["result"] as? [String: Any])?["execution_id"] as? String)
        let kill = try #require(try call(connection, 9, "kill", #"{"execution_id":"\#(sleeperID)","signal":15}"#).last)
        try expectShape("kill", kill, where: isResult)

        // An error, with and without an id it could read.
        let error = try #require(try call(connection, 10, "status", #"{"execution_id":"nope"}"#).last)
        let members = Set((error["error"] as? [String: Any] ?? [:]).keys)
        #expect(members.isSubset(of: ["code", "message", "reason"]) && members.contains("code"))
        try connection.sendFrame("not json")
        let unreadable = try #require(try connection.readFrame())
        #expect(unreadable["id"] is NSNull && unreadable["error"] != nil, "\(unreadable)")
    }
}

/// Every test that docs/SECURITY.md's threat table names exists, so the table cannot point at nothing.
struct SecurityDocTests {
    static func testSources() -> String {
        var sources = ""
        for directory in [
            "IntegrationTests", "runvoydTests", "RunvoyStoreTests", "RunvoyKitTests", "RunvoyConfigTests",
        ] {
            let path = Harness.packageRoot + "/Tests/" + directory
            for file in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            where file.hasSuffix(".swift") {
                sources += (try? String(contentsOfFile: path + "/" + file, encoding: .utf8)) ?? ""
            }
        }
        return sources
    }

    @Test func everyTestTheThreatTableNamesExists() throws {
        let doc = try String(contentsOfFile: Harness.packageRoot + "/docs/SECURITY.md", encoding: .utf8)
        let table = try #require(doc.range(of: "## Threats")).upperBound
        let sources = Self.testSources()
        var named = 0
        for line in doc[table...].split(separator: "\n") where line.hasPrefix("| ") {
            let last = String(line.split(separator: "|").last ?? "")
            for piece in last.split(separator: "`").enumerated() where piece.offset % 2 == 1 {
                let name = String(piece.element)
                guard name.first?.isUppercase == true, !name.contains(" ") else { continue }
                let parts = name.split(separator: ".")
                #expect(
                    sources.contains("class \(parts[0])") || sources.contains("struct \(parts[0])"),
                    "no suite \(parts[0])")
                if parts.count > 1 { #expect(sources.contains("func \(parts[1])("), "no test \(name)") }
                named += 1
            }
        }
        #expect(named > 20)
    }

    /// Every `Suite.test` docs/TESTING.md's map from promise to test names is a test that exists (a renamed test
    /// left the map pointing at nothing twice).
    @Test func everyTestTheTestingMapNamesExists() throws {
        let doc = try String(contentsOfFile: Harness.packageRoot + "/docs/TESTING.md", encoding: .utf8)
        let map = try #require(doc.range(of: "## From promise to test")).upperBound
        let sources = Self.testSources()
        var named = 0
        for match in doc[map...].matches(of: /`([A-Z][A-Za-z0-9]*Tests)\.([a-z][A-Za-z0-9]*)`/) {
            let (suite, test) = (String(match.output.1), String(match.output.2))
            #expect(
                sources.contains("class \(suite)") || sources.contains("struct \(suite)")
                    || sources.contains("extension \(suite)"), "no suite \(suite)")
            #expect(sources.contains("func \(test)("), "no test \(suite).\(test)")
            named += 1
        }
        #expect(named > 100)
    }
}
