import Foundation
import Glibc
import NIOCore
import NIOEmbedded
import PropertyBased
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Properties of the daemon's pure parts, each against a model or a reference written independently of the code:
/// the audit throttle against conservation and per-user bounds, request limits against `exec`'s own byte count,
/// signal names against signal(7), path decisions against `realpath(3)` and a textual normaliser, argument
/// matching against set membership.
struct DaemonPropertyTests {
    // MARK: - Refusal windows (docs/AUDIT.md "refusals_suppressed")

    /// One refusal: which of three users, how far the clock moves first (ms), and whether a periodic expiry runs.
    static let refusalEvent = zip(Gen<UInt32>.value(in: 1...3), Gen.int(in: 0...400), Gen.bool(0.2))

    /// Every refusal is either recorded or counted in exactly one summary; within any one window no user has more
    /// than `limit` records; a summary reports a window that lasted at least the period unless it was forced.
    @Test func refusalWindowsAccountForEveryRefusalAndBoundRecords() async {
        await propertyCheck(count: 300, input: Self.refusalEvent.array(of: 0...80), Gen.int(in: 1...5)) {
            events, limit in
            let period = Duration.milliseconds(1000)
            var windows = RefusalWindows(period: period)
            let start = ContinuousClock.now
            var now = start
            var recorded: [UInt32: Int] = [:]
            var summarized: [UInt32: Int] = [:]
            var refused: [UInt32: Int] = [:]
            // Records in the current window of each user, by the window's start (a model of the window).
            var windowStart: [UInt32: ContinuousClock.Instant] = [:]
            var inWindow: [UInt32: Int] = [:]
            func summary(_ s: RefusalWindows.Summary, forced: Bool) {
                summarized[s.uid, default: 0] += s.suppressed
                #expect(s.suppressed > 0)
                #expect(s.user == "user\(s.uid)")
                if !forced { #expect(s.elapsed >= period) }
            }
            for (uid, step, expire) in events {
                now += .milliseconds(step)
                if expire { for s in windows.expire(now: now) { summary(s, forced: false) } }
                refused[uid, default: 0] += 1
                if let started = windowStart[uid], now - started >= period { windowStart[uid] = nil }
                if windowStart[uid] == nil {
                    windowStart[uid] = now
                    inWindow[uid] = 0
                }
                switch windows.admit(uid: uid, user: "user\(uid)", limit: limit, now: now) {
                case .record(let previous):
                    recorded[uid, default: 0] += 1
                    inWindow[uid, default: 0] += 1
                    if let previous { summary(previous, forced: false) }
                case .suppress: break
                }
                #expect(inWindow[uid, default: 0] <= limit)
            }
            for s in windows.expire(now: now, all: true) { summary(s, forced: true) }
            #expect(windows.count == 0)
            for uid in refused.keys {
                #expect(recorded[uid, default: 0] + summarized[uid, default: 0] == refused[uid])
            }
        }
    }

    /// One user's refusals never change what happens to another's: the admissions of user 1 are the same with or
    /// without the other users' refusals interleaved.
    @Test func refusalWindowsOfUsersAreIndependent() async {
        await propertyCheck(count: 300, input: Self.refusalEvent.array(of: 0...60), Gen.int(in: 1...4)) {
            events, limit in
            func admissions(_ events: [(UInt32, Int, Bool)]) -> [RefusalWindows.Admission] {
                var windows = RefusalWindows(period: .milliseconds(700))
                var now = ContinuousClock.now
                var out: [RefusalWindows.Admission] = []
                for (uid, step, _) in events {
                    now += .milliseconds(step)
                    let admission = windows.admit(uid: uid, user: "u", limit: limit, now: now)
                    if uid == 1 {
                        // Elapsed times differ with the clock's origin only; keep the counts.
                        if case .record(let summary?) = admission {
                            out.append(
                                .record(
                                    summary: .init(uid: 1, user: "u", suppressed: summary.suppressed, elapsed: .zero)))
                        } else {
                            out.append(admission)
                        }
                    }
                }
                return out
            }
            // The same clock for user 1 alone: the others' steps still move time.
            var alone: [(UInt32, Int, Bool)] = []
            var carried = 0
            for (uid, step, expire) in events {
                carried += step
                if uid == 1 {
                    alone.append((1, carried, expire))
                    carried = 0
                }
            }
            #expect(admissions(events) == admissions(alone))
        }
    }

    // MARK: - Request limits (docs/CONFIGURATION.md "limits", docs/SECURITY.md)

    /// Refused exactly when a documented limit is exceeded, sizes counted as exec counts them (each string's bytes
    /// with its NUL, as `utf8CString` lays it out; `NAME=VALUE` and a NUL for the environment); the refusal names
    /// the first limit in the documented order and never quotes an argument or a value.
    @Test func requestLimitsRefuseExactlyWhenALimitIsExceeded() async {
        // Words of 1-, 2- and 4-byte characters.
        let word = Gen.int(in: 0...12).map { count in
            String(repeating: ["a", "é", "😀"][count % 3], count: count / 3 + count % 2)
        }
        let limit = Gen.int(in: 0...12)
        await propertyCheck(
            count: 500, input: word.array(of: 0...6), zip(word, word).array(of: 0...4).optional,
            zip(limit, limit, Gen.int(in: 0...60), limit, Gen.int(in: 0...40))
        ) { argv, pairs, bounds in
            var limits = Limits()
            (limits.maxArguments, limits.maxArgumentBytes, limits.maxArgvBytes, limits.maxEnvEntries) =
                (bounds.0, bounds.1 * 3, bounds.2, bounds.3)
            limits.maxEnvBytes = bounds.4
            let marked = argv.map { "SECRET" + $0 }
            var env: [String: String]?
            if let pairs {
                env = [:]
                for (key, value) in pairs { env?["K" + key] = "SECRET" + value }
            }
            // The reference: C strings as exec receives them.
            let sizes = marked.map { $0.utf8CString.count - 1 }
            let argvBytes = marked.reduce(0) { $0 + $1.utf8CString.count }
            let envBytes = env.map { $0.reduce(0) { $0 + "\($1.key)=\($1.value)".utf8CString.count } } ?? 0
            let expected: String? =
                marked.count > limits.maxArguments
                ? "max_arguments"
                : sizes.contains { $0 > limits.maxArgumentBytes }
                    ? "max_argument_bytes"
                    : argvBytes > limits.maxArgvBytes
                        ? "max_argv_bytes"
                        : (env?.count ?? 0) > limits.maxEnvEntries
                            ? "max_env_entries" : envBytes > limits.maxEnvBytes ? "max_env_bytes" : nil
            let refusal = RequestLimits.refusal(argv: marked, env: env, limits)
            #expect(refusal.map { $0.message.contains("limits.\(expected ?? "-") (") } ?? (expected == nil))
            #expect(refusal?.code == (expected == nil ? nil : .invalidArgument))
            #expect(refusal.map { !$0.message.contains("SECRET") } ?? true)
        }
    }

    // MARK: - Signals

    /// Linux's numbers for the signals `runvoyctl kill --signal` names (signal(7), x86 and ARM).
    static let signal7: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
        "CONT": 18, "STOP": 19, "TSTP": 20, "WINCH": 28,
    ]

    /// Any spelling of a known name (any case, with or without SIG) is its signal(7) number; a number is itself
    /// when it is a signal (1-64) and refused otherwise; any other word is refused.
    @Test func signalNamesAndNumbersParseAsSignal7Says() async {
        let names = Array(Self.signal7.keys).sorted()
        await propertyCheck(
            count: 400, input: Gen.int(in: 0...(names.count - 1)), Gen<UInt8>.value(), Gen.bool,
            Gen<Int32>.value(in: -100...200), Gen.letter.string(of: 1...6)
        ) { index, caseBits, prefixed, number, word in
            let name = names[index]
            var spelled = (prefixed ? "SIG" : "") + name
            spelled = String(
                spelled.enumerated().map { offset, c in
                    caseBits >> (offset % 8) & 1 == 1 ? Character(c.lowercased()) : c
                })
            #expect(SignalName.parse(spelled) == Self.signal7[name], "\(spelled)")
            #expect(SignalName.parse(String(number)) == ((1...64).contains(number) ? number : nil))
            let bare = word.uppercased().hasPrefix("SIG") ? String(word.uppercased().dropFirst(3)) : word.uppercased()
            #expect(SignalName.parse(word) == Self.signal7[bare])
        }
    }

    // MARK: - Execution ids

    /// Crockford base32 as the ULID specification writes it.
    static func crockford(_ text: Substring) -> UInt64? {
        let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
        var value: UInt64 = 0
        for c in text {
            guard let digit = alphabet.firstIndex(of: c) else { return nil }
            value = value << 5 | UInt64(digit)
        }
        return value
    }

    /// Ids are valid, carry their creation time in their first 10 characters (ULID), sort as their times do, and
    /// two ids of the same millisecond differ.
    @Test func executionIDsSortByTimeAndCarryIt() async {
        let time = Gen<UInt64>.value(in: 0...(1 << 48 - 1))
        await propertyCheck(count: 500, input: time, time) { a, b in
            let (x, y) = (ExecutionID.make(milliseconds: a), ExecutionID.make(milliseconds: b))
            #expect(ExecutionID.isValid(x) && ExecutionID.isValid(y))
            #expect(Self.crockford(x.prefix(10)) == a)
            if a < b { #expect(x < y) }
            if a > b { #expect(x > y) }
            #expect(ExecutionID.make(milliseconds: a) != x)
            #expect(!ExecutionID.isValid(String(x.dropLast())) && !ExecutionID.isValid(x.uppercased() + "u"))
        }
    }

    // MARK: - Frame decoder (docs/PROTOCOL.md "Framing")

    /// At any limit, a header announcing more than the limit fails the connection as soon as the four header
    /// bytes are in, whatever follows; a frame within the limit is delivered whole; a stream that ends inside a
    /// frame reports exactly the bytes it received.
    @Test func theFrameDecoderEnforcesAnyLimitAndReportsTruncation() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...3000), Gen.int(in: 0...3000), Gen.int(in: 0...3004)) {
            limit, length, cut in
            let stream = Frame.header(length: length) + [UInt8](repeating: 0x41, count: length)
            let received = min(cut, stream.count)
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: limit)))
            var buffer = channel.allocator.buffer(capacity: received)
            buffer.writeBytes(stream[..<received])
            do {
                try channel.writeInbound(buffer)
                #expect(length <= limit || received < 4, "accepted a header of \(length) over \(limit)")
            } catch let error as FrameDecoder.FrameTooLarge {
                #expect(error == FrameDecoder.FrameTooLarge(length: length, limit: limit))
                #expect(received >= 4 && length > limit)
                return
            } catch {
                Issue.record("unexpected \(error)")
                return
            }
            let frame = try? channel.readInbound(as: ByteBuffer.self)
            #expect(
                frame.map { Array($0.readableBytesView) }
                    == (received == stream.count ? Array(stream.dropFirst(4)) : nil))
            if received == stream.count || received == 0 {
                #expect(throws: Never.self) { _ = try channel.finish() }
            } else {
                #expect(throws: FrameDecoder.TruncatedFrame(received: received)) { _ = try channel.finish() }
            }
        }
    }

    // MARK: - Paths (docs/SECURITY.md "path_under")

    /// A textual normaliser written from POSIX pathname resolution without links: split on `/`, drop empty and
    /// `.` components, let `..` remove the previous component and stay at `/`.
    static func normalise(_ path: String, from workingDirectory: String) -> String {
        var stack: [Substring] = []
        let full = path.hasPrefix("/") ? path : workingDirectory + "/" + path
        for component in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": _ = stack.popLast()
            default: stack.append(component)
            }
        }
        return "/" + stack.joined(separator: "/")
    }

    static let component = Gen<String?>.element(of: ["a", "b", "in", "in-evil", ".", "..", "", "...", ".a", "a."])
        .map { $0! }
    static let path = zip(Gen.bool, Self.component.array(of: 0...7)).map { absolute, parts in
        (absolute ? "/" : "") + parts.joined(separator: "/")
    }

    /// `lexical` and `normalize` agree with the normaliser for any mix of `.`, `..`, empty and ordinary
    /// components, relative or absolute, and normalising twice changes nothing.
    @Test func lexicalNormalisationMatchesTheReference() async {
        let directory = Gen<String?>.element(of: ["/", "/srv", "/srv/in/a", "/a/../b"]).map { $0! }
        await propertyCheck(count: 500, input: Self.path, directory) { path, directory in
            let expected = Self.normalise(path, from: Self.normalise(directory, from: "/"))
            #expect(PathResolver.lexical(path, from: directory).path == expected, "\(path) from \(directory)")
            if path.hasPrefix("/") {
                #expect(CommandMatcher.normalize(path) == expected)
                #expect(CommandMatcher.normalize(expected) == expected)
            }
        }
    }

    /// A scratch tree without links: /tmp/runvoy-props-XXXX/{in/a/b, in-evil/a, a/b}.
    final class LinkFreeTree {
        let root: String
        init() throws {
            var template = Array("/tmp/runvoy-props-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
            root = PathResolver.resolve(String(cString: made)).path
            for directory in ["in", "in/a", "in/a/b", "in/b", "in-evil", "in-evil/a", "a", "a/b", "b"] {
                mkdir(root + "/" + directory, 0o755)
            }
            FileManager.default.createFile(atPath: root + "/in/a/f", contents: Data("x".utf8))
        }
        deinit { _ = system("rm -rf '\(root)'") }
    }

    /// Without links, the kernel's resolution of any path made of `.`, `..`, empty and real components is the
    /// textual normalisation: the resolver agrees with `realpath(3)` wherever the path exists, and with the
    /// normaliser everywhere.
    @Test func withoutLinksResolutionIsNormalisationAndMatchesRealpath() async throws {
        let tree = try LinkFreeTree()
        let root = tree.root
        var existing = 0
        await propertyCheck(count: 500, input: Self.component.array(of: 0...7), Gen.bool) { parts, fromIn in
            let relative = parts.joined(separator: "/")
            let working = fromIn ? root + "/in" : root
            let path = relative.isEmpty ? "." : relative
            let resolved = PathResolver.resolve(path, from: working)
            #expect(resolved.path == Self.normalise(path, from: working), "\(path) from \(working)")
            #expect(!resolved.indeterminate)
            if let real = Glibc.realpath(path.hasPrefix("/") ? path : working + "/" + path, nil) {
                defer { free(real) }
                existing += 1
                #expect(resolved.path == String(cString: real), "\(path) from \(working)")
            }
        }
        #expect(existing > 20)
    }

    /// Without links, `path_under` admits exactly the paths whose normal form is the directory or below it, by
    /// whole components (`in-evil` is not under `in`), written absolute or relative; and a deny rule matches them
    /// too.
    @Test func pathUnderWithoutLinksIsComponentPrefixOfTheNormalForm() async throws {
        let tree = try LinkFreeTree()
        let root = tree.root
        await propertyCheck(count: 500, input: Self.component.array(of: 1...7), Gen.int(in: 0...2)) { parts, form in
            let base = root + "/in"
            let relative = parts.joined(separator: "/")
            guard !relative.isEmpty else { return }
            // From the base, from the root, or absolute.
            let (path, working) =
                form == 0 ? (relative, base) : form == 1 ? (relative, root) : (root + "/" + relative, "/")
            let normal = Self.normalise(path, from: working)
            let inside = normal == base || normal.hasPrefix(base + "/")
            #expect(
                CommandMatcher.isPath(path, under: base, workingDirectory: working) == inside, "\(path) in \(working)")
            if inside { #expect(CommandMatcher.isPath(path, under: base, workingDirectory: working, liberal: true)) }
        }
    }

    // MARK: - Argument matching (docs/CONFIGURATION.md "commands")

    static let word = Gen<String?>.element(of: ["a", "b", "ab", "a b", "A", "", "x.y", "*", "a|b", "-l"]).map { $0! }

    /// Escapes a word for use inside a regular expression.
    static func regexLiteral(_ word: String) -> String {
        word.map { "\\^$.|?*+()[]{}/".contains($0) ? "\\\($0)" : String($0) }.joined()
    }

    /// A literal, a list of alternatives and an anchored alternation regex each match an argument exactly when it
    /// is one of their words: never a substring, never a prefix, never the words joined.
    @Test func argumentMatchersAreSetMembership() async {
        await propertyCheck(count: 500, input: Self.word.array(of: 1...4), Self.word.array(of: 1...3)) {
            words, pieces in
            let regex = words.map(Self.regexLiteral).joined(separator: "|")
            for argument in pieces + [pieces.joined(), pieces.joined(separator: " "), words.joined(separator: "|")] {
                let member = words.contains(argument)
                #expect(CommandMatcher.argumentMatches(.oneOf(words), argument, workingDirectory: "/") == member)
                #expect(
                    CommandMatcher.argumentMatches(.regex(regex), argument, workingDirectory: "/") == member,
                    "/\(regex)/ on \(argument)")
                #expect(
                    CommandMatcher.argumentMatches(.literal(words[0]), argument, workingDirectory: "/")
                        == (argument == words[0]))
            }
        }
    }

    /// A rule of literals, alternatives and regexes, with or without a trailing `*`, matches an argv exactly when
    /// a reference matcher says so; argv are made from the rule (so about half match) and then perturbed.
    @Test func commandRulesMatchLikeAReferenceMatcher() async {
        let element = zip(Gen.int(in: 0...2), Self.word.array(of: 1...3))
        await propertyCheck(
            count: 400, input: element.array(of: 0...3), Gen.bool, Gen.int(in: 0...6), Self.word.array(of: 0...2)
        ) { elements, trailing, perturb, extra in
            let matchers: [ArgumentMatcher] = elements.map { kind, words in
                switch kind {
                case 0: .literal(words[0])
                case 1: .oneOf(words)
                default: .regex(words.map(Self.regexLiteral).joined(separator: "|"))
                }
            }
            let pattern = ArgvPattern(
                elements: [.literal("echo")] + matchers, allowsTrailingArguments: trailing, line: 1)
            // An argv built from the rule: each element's last word, then extra words; then one perturbation.
            var argv = ["echo"] + elements.map { $0.1.last! } + extra
            switch perturb {
            case 0 where argv.count > 1: argv.removeLast()
            case 1 where argv.count > 1: argv[argv.count - 1] += "z"
            case 2: argv[0] = "cat"
            case 3 where argv.count > 1: argv.swapAt(1, argv.count - 1)
            default: break
            }
            func reference() -> Bool {
                guard argv[0] == "echo" else { return false }
                let rest = Array(argv.dropFirst())
                guard trailing ? rest.count >= elements.count : rest.count == elements.count else { return false }
                return zip(elements, rest).allSatisfy { element, argument in
                    element.0 == 0 ? argument == element.1[0] : element.1.contains(argument)
                }
            }
            let matcher = CommandMatcher(argv0: argv[0], searchPath: "/usr/bin:/bin", workingDirectory: "/")
            #expect(matcher.matches(pattern, argv: argv) == reference(), "\(pattern.display) on \(argv)")
        }
    }
}
