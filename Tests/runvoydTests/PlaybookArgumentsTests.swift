import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// A run's parameters: generated values of every type against the rules, checked against a reference written
/// independently of the implementation; values that try to inject never change a step's argv; every problem listed.
struct PlaybookArgumentsTests {
    typealias SeededGenerator = PathResolverTests.SeededGenerator

    /// Fixed, and printed, so a failure names a reproducible case.
    static let seed: UInt64 = 0x1919_2026_0A11_B00C

    final class Scratch {
        let root: String
        init() throws {
            var template = Array("/tmp/runvoy-pbargs-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
            root = PathResolver.resolve(String(cString: made)).path
            chmod(root, 0o755)
            for directory in ["in", "in/sub", "out"] { mkdir(root + "/" + directory, 0o755) }
            // A link inside `in` that leads out: `path_under` follows it, as the kernel will.
            symlink(root + "/out", root + "/in/escape")
        }
        deinit { _ = system("rm -rf '\(root)'") }
    }

    static func parameter(
        _ name: String, _ type: PlaybookParameterType, required: Bool = false, default value: String? = nil
    ) -> PlaybookParameter {
        var parameter = PlaybookParameter(name: name, type: type, line: 1)
        parameter.required = required
        parameter.defaultValue = value
        return parameter
    }

    static func playbook(under: String) -> PlaybookConfig {
        var playbook = PlaybookConfig(
            name: "deploy",
            steps: [
                PlaybookStep(
                    name: "plan", executor: nil,
                    argv: [
                        ArgvTemplate(literal: "terraform"), ArgvTemplate(literal: "plan"),
                        ArgvTemplate(prefix: "-var=env=", parameter: "env"), ArgvTemplate(parameter: "target"),
                        ArgvTemplate(prefix: "--count=", parameter: "count", suffix: "x"),
                        ArgvTemplate(parameter: "dir"), ArgvTemplate(parameter: "force"), ArgvTemplate(literal: "--"),
                        ArgvTemplate(parameter: "note"),
                    ], line: 1)
            ], file: "deploy.yaml")
        playbook.parameters = [
            parameter("target", .string(pattern: "[a-z][a-z0-9-]{0,15}"), required: true),
            parameter("env", .enumeration(["dev", "prod", "x y"]), default: "dev"),
            parameter("count", .integer(min: -5, max: 1000)),
            parameter("force", .boolean),
            parameter("dir", .path(under: [under])),
            parameter("note", .string(pattern: nil)),
        ]
        return playbook
    }

    // MARK: - The reference

    /// The rules, written again from their statement rather than from the implementation.
    static func referenceAccepts(_ name: String, _ value: String, under: String) -> Bool {
        let bytes = Array(value.utf8)
        guard bytes.count <= 4096 else { return false }
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            return false
        }
        switch name {
        case "target":
            guard let first = bytes.first, (97...122).contains(first), bytes.count <= 16 else { return false }
            return bytes.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 }
        case "env": return ["dev", "prod", "x y"].contains(value)
        case "count":
            // The canonical decimal form of a number in range is the only accepted spelling.
            guard let number = Int64(value), String(number) == value else { return false }
            return (-5...1000).contains(number)
        case "force": return value == "true" || value == "false"
        case "dir":
            guard value.hasPrefix(under + "/") || value == under else { return false }
            let rest = value.dropFirst(under.count).split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            if value.hasSuffix("/") { return false }
            return !rest.contains { $0.isEmpty || $0 == "." || $0 == ".." || $0 == "escape" }
        case "note": return true
        default: return false
        }
    }

    // MARK: - Generation

    static let alphabet: [String] = [
        "a", "z", "q", "0", "1", "9", "-", "+", " ", "\"", "'", ";", "$(", ")", "`", "*", "?", "[", "/", ".", "..",
        "\n", "\t", "\u{0}", "\u{7F}", "\u{85}", "\u{1B}", "é", "😀", "\\", "=", "--", "x y", "true", "in", "escape",
    ]

    static func randomText(_ random: inout SeededGenerator) -> String {
        (0..<Int.random(in: 0...10, using: &random)).map { _ in alphabet.randomElement(using: &random)! }.joined()
    }

    static func randomValue(for name: String, under: String, _ random: inout SeededGenerator) -> String {
        switch Int.random(in: 0...39, using: &random) {
        case 0: return randomText(&random)
        case 1: return String(repeating: "a", count: Int.random(in: 4090...4100, using: &random))
        case 2...9: return edgeValue(for: name, under: under, &random)
        default: return usualValue(for: name, under: under, &random)
        }
    }

    /// Values a caller would send, mostly valid.
    static func usualValue(for name: String, under: String, _ random: inout SeededGenerator) -> String {
        switch name {
        case "target": return ["web-1", "a", "db", "abcdefghijklmnop", "x9-"].randomElement(using: &random)!
        case "env": return ["dev", "prod", "x y"].randomElement(using: &random)!
        case "count": return String(Int64.random(in: -6...1001, using: &random))
        case "force": return Bool.random(using: &random) ? "true" : "false"
        case "dir": return under + ["", "/a", "/sub", "/sub/x y", "/sub/new/deeper"].randomElement(using: &random)!
        default: return randomText(&random)
        }
    }

    /// Values at and beyond the edges of the rules.
    static func edgeValue(for name: String, under: String, _ random: inout SeededGenerator) -> String {
        switch name {
        case "target":
            return ["A", "1a", "abcdefghijklmnopq", "a b", "a;b", "-a", "", "é"].randomElement(using: &random)!
                + (Bool.random(using: &random) ? "" : randomText(&random))
        case "env": return ["Dev", "dev ", "staging", "", "x  y"].randomElement(using: &random)!
        case "count":
            return [
                "0", "-0", "7", "+7", "007", "-5", "-6", "1000", "1001", "9223372036854775807",
                "9223372036854775808", "-9223372036854775809", "1e3", "", "-", " 7", "٣",
            ].randomElement(using: &random)!
        case "force": return ["True", "1", "yes", "", "false ", "FALSE"].randomElement(using: &random)!
        case "dir":
            let tails = ["", "/", "/a", "/sub/", "/sub/../..", "/./a", "//a", "/escape", "/escape/x", "/sub/.."]
            let base = [under, under + "x", "/etc", "relative", ""].randomElement(using: &random)!
            return base + tails.randomElement(using: &random)!
        default: return randomText(&random)
        }
    }

    // MARK: - Properties

    @Test func bindAgreesWithTheReferenceOnGeneratedValues() throws {
        let scratch = try Scratch()
        let under = scratch.root + "/in"
        let playbook = Self.playbook(under: under)
        let names = playbook.parameters.map(\.name)
        print("PlaybookArgumentsTests seed \(Self.seed)")
        var random = SeededGenerator(state: Self.seed)
        var outcomes = (accepted: 0, refused: 0)
        for iteration in 0..<3000 {
            var given: [String: String] = [:]
            for name in names
            where name == "target" ? Int.random(in: 0...19, using: &random) > 0 : Bool.random(using: &random) {
                given[name] = Self.randomValue(for: name, under: under, &random)
            }
            if Int.random(in: 0...19, using: &random) == 0 { given[Self.randomText(&random)] = "x" }
            var expectedBad = Set(given.keys.filter { !names.contains($0) })
            for name in names {
                if let value = given[name] {
                    if !Self.referenceAccepts(name, value, under: under) { expectedBad.insert(name) }
                } else if name == "target" {
                    expectedBad.insert(name)
                }
            }
            let context = "seed \(Self.seed) iteration \(iteration): \(JSONText.quoted(String(describing: given)))"
            switch PlaybookArguments.bind(given, to: playbook, writer: nil) {
            case .success(let arguments):
                outcomes.accepted += 1
                #expect(expectedBad.isEmpty, "accepted: \(context)")
                var expected = given
                expected["env"] = given["env"] ?? "dev"
                #expect(arguments.values == expected, "\(context)")
            case .failure(let error):
                outcomes.refused += 1
                #expect(error.problems.count == expectedBad.count, "\(error.problems) \(context)")
                for name in expectedBad {
                    let label = PlaybookArgumentError.label(name)
                    #expect(error.problems.contains { $0.hasPrefix(label + ":") }, "\(name) \(context)")
                }
            }
        }
        // The generator reaches both sides of the rules, not only one.
        print("PlaybookArgumentsTests accepted \(outcomes.accepted), refused \(outcomes.refused)")
        #expect(outcomes.accepted >= 100 && outcomes.refused >= 100)
    }

    /// Values made to look like shell syntax or options land byte for byte in their one argument.
    @Test(arguments: [
        "a b", "'quoted'", "\"dq\"", "a;rm -rf /", "$(id)", "`id`", "-rf", "--x=y", "*", "?.txt", "[a-z]*", "a\\ b",
        "{{note}}", "${HOME}", "|cat", "&& true", "> /etc/passwd", "~root", "", " ",
    ])
    func injectionNeverChangesTheArgvShape(value: String) throws {
        let scratch = try Scratch()
        let playbook = Self.playbook(under: scratch.root + "/in")
        let plain = try PlaybookArguments.bind(["target": "web", "note": "plain"], to: playbook, writer: nil).get()
        let hostile = try PlaybookArguments.bind(["target": "web", "note": value], to: playbook, writer: nil).get()
        let step = playbook.steps[0]
        let before = plain.argv(of: step)
        let after = hostile.argv(of: step)
        #expect(after.count == before.count)
        let index = try #require(before.firstIndex(of: "plain"))
        #expect(Array(after[index].utf8) == Array(value.utf8))
        var others = after
        others.remove(at: index)
        var expectedOthers = before
        expectedOthers.remove(at: index)
        #expect(others == expectedOthers)
        #expect(before == ["terraform", "plan", "-var=env=dev", "web", "--", "plain"])
    }

    /// Newlines and other controls are refused for every type, never passed on.
    @Test(arguments: ["a\nb", "a\rb", "\u{0}", "x\u{1B}[2J", "\u{7F}", "\u{9B}31m", "ok\t"])
    func controlCharactersAreRefused(value: String) throws {
        let scratch = try Scratch()
        let playbook = Self.playbook(under: scratch.root + "/in")
        for name in ["target", "note", "env", "count", "force", "dir"] {
            var given = ["target": "web"]
            given[name] = name == "dir" ? scratch.root + "/in/" + value : value
            let result = PlaybookArguments.bind(given, to: playbook, writer: nil)
            guard case .failure(let error) = result else {
                Issue.record("\(name) accepted \(JSONText.quoted(value))")
                continue
            }
            #expect(error.problems.count == 1)
            #expect(error.problems[0].hasPrefix("param '\(name)':"))
        }
    }

    /// An enum member is matched byte for byte: canonically equivalent text (which Swift's `==` takes as equal)
    /// is another value, and the step would get its bytes.
    @Test func enumMembersAreMatchedByteForByte() throws {
        var playbook = Self.playbook(under: "/srv")
        playbook.parameters[1] = Self.parameter("env", .enumeration(["caf\u{E9}", "a;b"]))
        #expect(PlaybookArguments.bind(["target": "w", "env": "caf\u{E9}"], to: playbook, writer: nil).failure == nil)
        #expect(
            PlaybookArguments.bind(["target": "w", "env": "cafe\u{301}"], to: playbook, writer: nil).failure != nil)
        #expect(PlaybookArguments.bind(["target": "w", "env": "a\u{37E}b"], to: playbook, writer: nil).failure != nil)
    }

    @Test func everyProblemIsListed() throws {
        let scratch = try Scratch()
        let playbook = Self.playbook(under: scratch.root + "/in")
        let given = [
            "env": "staging", "count": "+3", "force": "yes", "dir": scratch.root + "/in/escape/x",
            "bogus": "1", "evil\nname": "x",
        ]
        let error = try #require(PlaybookArguments.bind(given, to: playbook, writer: nil).failure)
        #expect(
            error.problems.map { $0.prefix { $0 != ":" } } == [
                "param 'bogus'", "param \"evil\\nname\"", "param 'target'", "param 'env'", "param 'count'",
                "param 'force'", "param 'dir'",
            ])
        let wire = error.runvoyError
        #expect(wire.code == .invalidArgument)
        for problem in error.problems { #expect(wire.message.contains(problem)) }
        #expect(!wire.message.contains("\n"))
    }

    /// A parameter without a value leaves its argument out; a default fills it; an integer's bounds hold at the
    /// edges of Int64 too.
    @Test func absentValuesAndDefaults() throws {
        let scratch = try Scratch()
        var playbook = Self.playbook(under: scratch.root + "/in")
        let arguments = try PlaybookArguments.bind(
            ["target": "web", "count": "0", "force": "false", "dir": scratch.root + "/in/sub/new"], to: playbook,
            writer: nil
        ).get()
        #expect(
            arguments.argv(of: playbook.steps[0]) == [
                "terraform", "plan", "-var=env=dev", "web", "--count=0x", scratch.root + "/in/sub/new", "false", "--",
            ])
        playbook.parameters[2] = Self.parameter("count", .integer(min: nil, max: nil))
        for value in ["9223372036854775807", "-9223372036854775808"] {
            #expect(PlaybookArguments.bind(["target": "w", "count": value], to: playbook, writer: nil).failure == nil)
        }
        for value in ["9223372036854775808", "-9223372036854775809", "-0", "00"] {
            #expect(PlaybookArguments.bind(["target": "w", "count": value], to: playbook, writer: nil).failure != nil)
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
