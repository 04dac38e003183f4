import Foundation
import RunvoyKit
import Testing

@testable import RunvoyConfig

/// The declared schema (`ConfigSchema`) against the parser, docs/CONFIGURATION.md and packaging/runvoyd.yaml:
/// every key is documented under its section with its default and shown in the default file, every declared
/// default is what the parser uses when the key is left out, every required key is reported when it is, and a
/// key a section does not declare is refused, with a suggestion when it is near a declared one.
struct ConfigSchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    // MARK: - The schema itself

    @Test func everySectionIsReachedFromTheTopAndEveryReferenceResolves() {
        let paths = ConfigSchema.sections.map(\.path)
        #expect(Set(paths).count == paths.count, "two sections share a path")
        var referenced: Set<String> = [""]
        for section in ConfigSchema.sections {
            #expect(Set(section.names).count == section.names.count, "a key twice in \(section.path)")
            for key in section.keys {
                guard let path = key.type.sectionPath else { continue }
                #expect(ConfigSchema.section(at: path) != nil, "\(section.path).\(key.name) names no section \(path)")
                referenced.insert(path)
            }
        }
        #expect(referenced == Set(paths))
    }

    /// The rule and argument mappings are read by hand (a mapping of exactly one key), not through `fields`:
    /// the keys they declare are the ones the parser takes.
    @Test func ruleAndArgumentKeysAreTheOnesTheParserTakes() throws {
        // `approval` stands beside an effect, never alone (ApprovalConfigTests).
        for key in ConfigSchema.RuleKeys.section.keys where key != ConfigSchema.RuleKeys.approval {
            let config = try parse(Self.rules("[{\(key.name): [ls]}]"))
            #expect(config.defaultExecutor.commands.rules.map(\.effect.rawValue) == [key.name])
        }
        #expect(
            diagnostics(Self.rules("[{permit: [ls]}]")).map(\.message) == [
                "each rule is `any`, a list of arguments such as [systemctl, restart, nginx], or {allow: RULE} / {deny: RULE}"
            ])
        let matchers = ConfigSchema.MatcherKeys.section.keys.map { "{\($0.name): /srv}" }.joined(separator: ", ")
        let config = try parse(Self.rules("[[ls, \(matchers)]]"))
        #expect(
            config.defaultExecutor.commands.rules.first?.elements == [
                .literal("ls"), .regex("/srv"), .pathUnder("/srv"),
            ])
        #expect(
            diagnostics(Self.rules("[[ls, {glob: x}]]")).map(\.message) == [
                "an argument is a string, a list of alternatives, {regex: RE} or {path_under: DIR}"
            ])
    }

    /// ConfigPropertyTests keeps its own table of the numeric keys, written from the docs: it covers every numeric
    /// key the schema declares, with the same range.
    @Test func thePropertyTestCoversEveryNumericKeyWithItsDeclaredRange() {
        var declared: [String: String] = [:]
        for section in ConfigSchema.sections {
            for key in section.keys {
                let path = section.path.isEmpty ? key.name : "\(section.path).\(key.name)"
                switch key.type {
                case .integer(let range): declared[path] = "integer \(range)"
                case .size(let range, _): declared[path] = "size \(range)"
                // A list's keys (hooks[N].timeout) are not written as one mapping: HookConfigTests cover them.
                case .duration(let bound, _) where !section.path.hasPrefix("executors") && !section.path.contains("["):
                    let ms: ClosedRange<Int64> =
                        switch bound {
                        case .any: 0...Int64.max
                        case .positive: 1...Int64.max
                        case .atLeast(let minimum): ConfigPropertyTests.ms(minimum)...Int64.max
                        case .between(let low, let high): ConfigPropertyTests.ms(low)...ConfigPropertyTests.ms(high)
                        }
                    declared[path] = "duration \(ms)"
                default: break
                }
            }
        }
        var tested: [String: String] = [:]
        for (index, key) in ConfigPropertyTests.keys.enumerated() {
            tested[ConfigPropertyTests.path(index)] =
                switch key.kind {
                case .integer(let range): "integer \(Int(range.lowerBound)...Int(range.upperBound))"
                case .size(let range): "size \(range)"
                case .duration(let range): "duration \(range)"
                }
        }
        #expect(tested == declared)
    }

    // MARK: - The schema against the parser

    /// Where each section stands in a small valid file: the entries it must have, and the file around them.
    struct Placement: Sendable {
        var required: [String]
        var file: @Sendable ([String]) -> String
        /// The key path the section's keys get, with the names the file chooses filled in.
        var path: String
    }

    static func rules(_ commands: String) -> String {
        "executors: {x: {run_as: {user: nobody}, commands: \(commands)}}"
    }

    static func executor(_ entries: [String]) -> String {
        "executors: {x: {\((["run_as: {user: nobody}", "commands: any"] + entries).joined(separator: ", "))}}"
    }

    static let placements: [String: Placement] = [
        "": Placement(
            required: ["executors: {x: {run_as: {user: nobody}, commands: any}}"],
            file: { "{\($0.joined(separator: ", "))}" }, path: ""),
        "socket": Placement(
            required: [], file: { "socket: {\($0.joined(separator: ", "))}\n" + executor([]) }, path: "socket"),
        "limits": Placement(
            required: [], file: { "limits: {\($0.joined(separator: ", "))}\n" + executor([]) }, path: "limits"),
        "limits.rates": Placement(
            required: [], file: { "limits: {rates: {\($0.joined(separator: ", "))}}\n" + executor([]) },
            path: "limits.rates"),
        "limits.rates.NAME": Placement(
            required: [],
            file: { "limits: {rates: {roles: {viewer: {\($0.joined(separator: ", "))}}}}\n" + executor([]) },
            path: "limits.rates.roles.viewer"),
        "audit": Placement(
            required: [], file: { "audit: {\($0.joined(separator: ", "))}\n" + executor([]) }, path: "audit"),
        "history": Placement(
            required: [], file: { "history: {\($0.joined(separator: ", "))}\n" + executor([]) }, path: "history"),
        "secrets": Placement(
            required: [], file: { "secrets: {\($0.joined(separator: ", "))}\n" + executor([]) }, path: "secrets"),
        "metrics": Placement(
            required: [], file: { "metrics: {\($0.joined(separator: ", "))}\n" + executor([]) }, path: "metrics"),
        "roles.ROLE": Placement(
            required: [], file: { "roles: {viewer: {\($0.joined(separator: ", "))}}\n" + executor([]) },
            path: "roles.viewer"),
        "expect[N]": Placement(
            required: ["user: root", "argv: [id]", "result: allow"],
            file: { "expect: [{\($0.joined(separator: ", "))}]\n" + executor([]) }, path: "expect[0]"),
        "executors.NAME": Placement(
            required: ["run_as: {user: nobody}", "commands: any"],
            file: { "executors: {x: {\($0.joined(separator: ", "))}}" }, path: "executors.x"),
        "executors.NAME.run_as": Placement(
            required: ["user: nobody"],
            file: { "executors: {x: {run_as: {\($0.joined(separator: ", "))}, commands: any}}" },
            path: "executors.x.run_as"),
        "executors.NAME.allow": Placement(
            required: [], file: { executor(["allow: {\($0.joined(separator: ", "))}"]) }, path: "executors.x.allow"),
        "executors.NAME.locks[N]": Placement(
            required: ["name: db"], file: { executor(["locks: [{\($0.joined(separator: ", "))}]"]) },
            path: "executors.x.locks[0]"),
        "executors.NAME.environment.VAR": Placement(
            required: ["secret: s1"], file: { executor(["environment: {V: {\($0.joined(separator: ", "))}}"]) },
            path: "executors.x.environment.V"),
        "executors.NAME.limits": Placement(
            required: [], file: { executor(["limits: {\($0.joined(separator: ", "))}"]) }, path: "executors.x.limits"),
        "approvals": Placement(
            required: [], file: { "approvals: {\($0.joined(separator: ", "))}\n" + executor([]) }, path: "approvals"),
        "grants": Placement(
            required: [], file: { "grants: {\($0.joined(separator: ", "))}\n" + executor([]) }, path: "grants"),
        "executors.NAME.approval": Placement(
            required: ["approvers: {roles: [admin]}"],
            file: { executor(["approval: {\($0.joined(separator: ", "))}"]) },
            path: "executors.x.approval"),
        "executors.NAME.approval.approvers": Placement(
            required: [], file: { executor(["approval: {approvers: {\($0.joined(separator: ", "))}}"]) },
            path: "executors.x.approval.approvers"),
        "executors.NAME.break_glass": Placement(
            required: [], file: { executor(["break_glass: {\($0.joined(separator: ", "))}"]) },
            path: "executors.x.break_glass"),
        "hooks[N]": Placement(
            required: ["name: h", "event: post_exec", "command: [/bin/true]", "user: nobody"],
            file: { "hooks: [{\($0.joined(separator: ", "))}]\n" + executor([]) }, path: "hooks[0]"),
        "executors.NAME.hooks[N]": Placement(
            required: ["name: h", "event: post_exec", "command: [/bin/true]", "user: nobody"],
            file: { executor(["hooks: [{\($0.joined(separator: ", "))}]"]) }, path: "executors.x.hooks[0]"),
        "executors.NAME.rlimits": Placement(
            required: [], file: { executor(["rlimits: {\($0.joined(separator: ", "))}"]) },
            path: "executors.x.rlimits"),
        "executors.NAME.sandbox": Placement(
            required: [], file: { executor(["sandbox: {\($0.joined(separator: ", "))}"]) },
            path: "executors.x.sandbox"),
    ]

    /// The sections read through `fields`, each with the place the tests put it.
    static var mappedSections: [(ConfigSection, Placement)] {
        ConfigSchema.sections.compactMap { section in placements[section.path].map { (section, $0) } }
    }

    @Test func everySectionReadAsAMappingHasAPlaceInTheseTests() {
        let byHand = [ConfigSchema.RuleKeys.section.path, ConfigSchema.MatcherKeys.section.path]
        #expect(Set(Self.mappedSections.map(\.0.path)) == Set(ConfigSchema.sections.map(\.path)).subtracting(byHand))
    }

    func parse(_ yaml: String) throws -> DaemonConfig {
        try ConfigLoader.parse(yaml: yaml, file: "schema.yaml")
    }

    func diagnostics(_ yaml: String) -> [ConfigDiagnostic] {
        ConfigLoaderTests.diagnostics(yaml).filter { $0.severity == .error }
    }

    @Test func theRequiredEntriesAloneGiveAValidFile() throws {
        for (section, place) in Self.mappedSections {
            do {
                _ = try parse(place.file(place.required))
            } catch {
                Issue.record("\(section.path): \(error)")
            }
        }
    }

    /// Writing a key's declared default gives the configuration that leaving the key out gives.
    @Test func everyDeclaredDefaultIsTheDefault() throws {
        for (section, place) in Self.mappedSections {
            let without = try parse(place.file(place.required))
            for key in section.keys {
                guard case .value(let text) = key.defaultValue else { continue }
                let with = try parse(place.file(place.required + ["\(key.name): \(text)"]))
                #expect(with == without, "\(section.path).\(key.name): \(text)")
            }
        }
    }

    @Test func leavingOutARequiredKeyIsReportedAtItsPath() {
        for (section, place) in Self.mappedSections {
            for key in section.keys where key.defaultValue == .required {
                let entries = place.required.filter { !$0.hasPrefix("\(key.name):") }
                let path = place.path.isEmpty ? key.name : "\(place.path).\(key.name)"
                let found = diagnostics(place.file(entries))
                #expect(found.contains { $0.keyPath == path && $0.message.contains("required") }, "\(path): \(found)")
            }
        }
    }

    /// In every section: an undeclared key is an error at its own key path, and a misspelt one names the key meant.
    @Test func anUndeclaredKeyIsRefusedInEverySection() {
        for (section, place) in Self.mappedSections {
            let prefix = place.path.isEmpty ? "" : "\(place.path)."
            let unknown = diagnostics(place.file(place.required + ["bogus_key: 1"]))
            #expect(unknown.map(\.keyPath) == ["\(prefix)bogus_key"], "\(section.path)")
            #expect(unknown.map(\.message) == ["unknown key 'bogus_key'"], "\(section.path)")
            for key in section.keys {
                let typo = String(key.name.prefix(1)) + "x" + key.name.dropFirst()
                let found = diagnostics(place.file(place.required + ["\(typo): 1"]))
                #expect(found.map(\.keyPath) == ["\(prefix)\(typo)"], "\(section.path).\(key.name)")
                #expect(found.map(\.message) == ["unknown key '\(typo)' (did you mean '\(key.name)'?)"])
            }
        }
    }

    // MARK: - The schema against the documentation and the default file

    /// The lines of docs/CONFIGURATION.md under `heading`, up to the next heading (outside code blocks).
    static func part(_ heading: String, of docs: String) -> [String]? {
        let lines = docs.components(separatedBy: "\n")
        guard let start = lines.firstIndex(of: heading) else { return nil }
        var part: [String] = []
        var inCode = false
        for line in lines[(start + 1)...] {
            if line.hasPrefix("```") { inCode.toggle() }
            if !inCode && line.hasPrefix("#") { break }
            part.append(line)
        }
        return part
    }

    /// The cell of `row` under the column `column` of the table it stands in, if the table has that column.
    static func cell(_ column: String, of row: Int, in lines: [String]) -> String? {
        var header = row
        while header > 0 && lines[header - 1].hasPrefix("|") { header -= 1 }
        let columns = lines[header].components(separatedBy: " | ")
        let cells = lines[row].components(separatedBy: " | ")
        guard let index = columns.firstIndex(of: column), index < cells.count else { return nil }
        return cells[index]
    }

    /// Every key is in docs/CONFIGURATION.md under its section's heading: as a table row (`prefix.key`, with the
    /// declared default in the "default" column where the table has one) or written `{key: ...}`.
    @Test func everyKeyIsDocumentedUnderItsSectionWithItsDefault() throws {
        let docs = try Self.read("docs/CONFIGURATION.md")
        for section in ConfigSchema.sections + ConfigSchema.playbookSections {
            let part = try #require(Self.part(section.docsHeading, of: docs), "no heading \(section.docsHeading)")
            for key in section.keys {
                let name = section.docsPrefix + key.name
                let row = part.firstIndex { $0.hasPrefix("| `\(name)`") || $0.hasPrefix("| `\(name).") }
                let inline = part.contains { $0.contains("{\(key.name): ") }
                if let row, part[row].hasPrefix("| `\(name)` |"), let cell = Self.cell("default", of: row, in: part) {
                    #expect(cell == key.defaultValue.documented, "CONFIGURATION.md: the default of `\(name)`")
                }
                if row != nil || inline { continue }
                // A key that holds a section documented under a heading of its own is documented by that heading.
                let inner = key.type.sectionPath.flatMap(ConfigSchema.section(at:))
                #expect(
                    inner.map { $0.docsHeading != section.docsHeading } == true,
                    "CONFIGURATION.md, \(section.docsHeading): no `\(name)`")
            }
        }
    }

    /// Every key is set, or shown in a comment, in packaging/runvoyd.yaml (the default /etc/runvoy/runvoyd.yaml).
    @Test func everyKeyIsShownInTheDefaultFile() throws {
        let lines = try Self.read("packaging/runvoyd.yaml").components(separatedBy: "\n")
        for section in ConfigSchema.sections {
            for key in section.keys {
                let shown = lines.contains { line in
                    line.drop(while: { $0 == " " || $0 == "#" || $0 == "-" }).hasPrefix("\(key.name):")
                        || line.contains("{\(key.name):") || line.contains(", \(key.name):")
                }
                #expect(shown, "packaging/runvoyd.yaml has no example of `\(key.name):` (\(section.path))")
            }
        }
    }
}
