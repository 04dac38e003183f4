import PropertyBased
import RunvoyKit
import Testing

@testable import RunvoyConfig

/// Properties of the configuration parser against the tables of docs/CONFIGURATION.md: generated files
/// round-trip their values, every out-of-range value is reported at its own line and key, and no edit of a file
/// crashes the parser or yields a diagnostic without a place.
struct ConfigPropertyTests {
    /// The same executor as `executor`, in block style, so that a key of its own can follow.
    static let executorLines = [
        "executors:", "  x:", "    run_as: {user: nobody}", "    allow: {users: [\"*\"]}", "    commands: any",
    ]

    static let executor = """
        executors:
          x: {run_as: {user: nobody}, allow: {users: ["*"]}, commands: any}
        """

    /// The documented unit spellings and their factors (docs/CONFIGURATION.md "Sizes are ...").
    static let sizeUnits: [(String, Int64)] = [
        ("", 1), ("B", 1), ("K", 1 << 10), ("KB", 1 << 10), ("KiB", 1 << 10), ("M", 1 << 20), ("MB", 1 << 20),
        ("MiB", 1 << 20), ("G", 1 << 30), ("GB", 1 << 30), ("GiB", 1 << 30), ("T", 1 << 40), ("TB", 1 << 40),
        ("TiB", 1 << 40),
    ]

    static let durationUnits: [(String, Int64)] = [
        ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    enum Kind: Sendable {
        case integer(ClosedRange<Int64>)
        case size(ClosedRange<Int64>)
        /// Milliseconds.
        case duration(ClosedRange<Int64>)
    }

    /// Every numeric key with its documented range, and where the parsed value lands.
    static let keys: [(section: String?, key: String, kind: Kind, value: @Sendable (DaemonConfig) -> Int64?)] = [
        ("limits", "max_frame_bytes", .integer(1024...(64 << 20)), { Int64($0.limits.maxFrameBytes) }),
        ("limits", "idle_timeout", .duration(1...Int64.max), { ms($0.limits.idleTimeout) }),
        ("limits", "max_connections", .integer(1...1_000_000), { Int64($0.limits.maxConnections) }),
        ("limits", "max_executions", .integer(1...100_000), { Int64($0.limits.maxExecutions) }),
        ("limits", "max_connections_per_user", .integer(1...1_000_000), { Int64($0.limits.maxConnectionsPerUser) }),
        (
            "limits", "max_connections_without_role", .integer(1...1_000_000),
            { Int64($0.limits.maxConnectionsWithoutRole) }
        ),
        (
            "limits", "reserved_admin_connections", .integer(0...1_000_000),
            { Int64($0.limits.reservedAdminConnections) }
        ),
        ("limits", "max_executions_per_user", .integer(1...100_000), { Int64($0.limits.maxExecutionsPerUser) }),
        ("limits", "reserved_admin_executions", .integer(0...100_000), { Int64($0.limits.reservedAdminExecutions) }),
        ("limits", "max_pending_bytes_per_user", .size(1024...(1 << 40)), { Int64($0.limits.maxPendingBytesPerUser) }),
        ("limits", "max_edit_bytes", .size(1...(48 << 20)), { Int64($0.limits.maxEditBytes) }),
        ("limits", "max_arguments", .integer(1...1_000_000), { Int64($0.limits.maxArguments) }),
        ("limits", "max_argument_bytes", .size(1...(64 << 20)), { Int64($0.limits.maxArgumentBytes) }),
        ("limits", "max_argv_bytes", .size(1...(64 << 20)), { Int64($0.limits.maxArgvBytes) }),
        ("limits", "max_env_entries", .integer(0...100_000), { Int64($0.limits.maxEnvEntries) }),
        ("limits", "max_env_bytes", .size(0...(64 << 20)), { Int64($0.limits.maxEnvBytes) }),
        ("audit", "write_timeout", .duration(10...600_000), { ms($0.audit.writeTimeout) }),
        ("history", "max_output_bytes", .size((64 << 10)...(1 << 40)), { $0.history.maxOutputBytes }),
        ("history", "max_age", .duration(1...Int64.max), { $0.history.maxAge.map(ms) }),
        ("history", "max_total_bytes", .size((1 << 20)...(1 << 50)), { $0.history.maxTotalBytes }),
        ("history", "prune_interval", .duration(1000...Int64.max), { ms($0.history.pruneInterval) }),
        ("history", "min_free_bytes", .size(0...(1 << 50)), { $0.history.minFreeBytes }),
        ("secrets", "min_length", .integer(1...4096), { Int64($0.secrets.minLength) }),
        ("metrics", "textfile_interval", .duration(1000...Int64.max), { ms($0.metrics.textfileInterval) }),
        ("approvals", "max_pending", .integer(1...100_000), { Int64($0.approvals.maxPending) }),
        ("approvals", "max_pending_per_user", .integer(1...1000), { Int64($0.approvals.maxPendingPerUser) }),
        ("approvals", "max_expires", .duration(1000...Int64.max), { ms($0.approvals.maxExpires) }),
        ("grants", "max_duration", .duration(60_000...7_776_000_000), { ms($0.grantSettings.maxDuration) }),
        (nil, "shutdown_grace", .duration(0...Int64.max), { ms($0.shutdownGrace) }),
        (nil, "kill_grace", .duration(0...Int64.max), { ms($0.killGrace) }),
        // Written into the file's one executor, `x` (see `executorLines`); last, since it closes the file.
        ("executors.NAME", "concurrency", .integer(1...100_000), { $0.executors.first?.concurrency.map(Int64.init) }),
        ("executors.NAME.limits", "memory_max", .size(4096...Int64.max), { $0.executors.first?.limits.memoryMax }),
        (
            "executors.NAME.limits", "memory_swap_max", .size(0...Int64.max),
            { $0.executors.first?.limits.memorySwapMax }
        ),
        (
            "executors.NAME.limits", "cpu_quota", .integer(1...100_000),
            { $0.executors.first?.limits.cpuQuota.map(Int64.init) }
        ),
        (
            "executors.NAME.limits", "cpu_weight", .integer(1...10_000),
            { $0.executors.first?.limits.cpuWeight.map(Int64.init) }
        ),
        (
            "executors.NAME.limits", "tasks_max", .integer(1...4_194_304),
            { $0.executors.first?.limits.tasksMax.map(Int64.init) }
        ),
        (
            "executors.NAME.limits", "io_weight", .integer(1...10_000),
            { $0.executors.first?.limits.ioWeight.map(Int64.init) }
        ),
        (
            "executors.NAME.rlimits", "nofile", .integer(1...1_048_576),
            { $0.executors.first?.rlimits.openFiles.map { Int64($0) } }
        ),
        (
            "executors.NAME.rlimits", "nproc", .integer(1...4_194_304),
            { $0.executors.first?.rlimits.processes.map { Int64($0) } }
        ),
        (
            "executors.NAME.rlimits", "core", .size(0...Int64.max),
            { $0.executors.first?.rlimits.coreBytes.map { Int64($0) } }
        ),
        // Written with `approvers` after it (0 needs none: the executor keeps no policy).
        (
            "executors.NAME.approval", "count", .integer(0...16),
            { $0.executors.first.map { Int64($0.approval?.count ?? 0) } }
        ),
    ]

    /// Keys that may not be given together: the second is reported when both are (in range).
    static let exclusive: [(first: String, second: String)] = [
        ("executors.NAME.limits.cpu_quota", "executors.NAME.limits.cpu_weight")
    ]

    /// Keys whose value must be less than another key's (a reserve and its ceiling), with the ceiling's default.
    static let lessThan: [String: (ceiling: String, default: Int64)] = [
        "limits.reserved_admin_connections": ("limits.max_connections", 4096),
        "limits.reserved_admin_executions": ("limits.max_executions", 256),
    ]

    /// A value in its range that is not less than its ceiling (the one written, or the default) is an error too.
    static func applyCeilings(_ expected: inout [(index: Int, value: Int64?, line: Int)]) {
        let written = Dictionary(expected.compactMap { item in item.value.map { (path(item.index), $0) } }) { $1 }
        for position in expected.indices {
            guard let value = expected[position].value, let rule = lessThan[path(expected[position].index)] else {
                continue
            }
            if value >= written[rule.ceiling] ?? rule.default { expected[position].value = nil }
        }
        for (first, second) in exclusive where written[first] != nil {
            for position in expected.indices where path(expected[position].index) == second {
                expected[position].value = nil
            }
        }
    }

    static func ms(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// For each key: a number (0...2000, sometimes near a power of two or negative), a unit, and whether to write
    /// the value at all.
    static let setting = zip(Gen.bool(0.7), Gen.int(in: -3...2000), Gen.int(in: 0...13), Gen.int(in: 0...2))

    /// A file setting any subset of the numeric keys to values in and out of their documented ranges, written with
    /// any unit spelling: each value in range is what the parsed configuration holds, and each value out of range
    /// (or not a number) gives an error at that value's line and key path, and no other error.
    @Test func numericSettingsRoundTripOrAreReportedWhereTheyStand() async {
        await propertyCheck(count: 250, input: Self.setting.array(of: Self.keys.count...Self.keys.count)) { settings in
            var lines: [String] = []
            var expected: [(index: Int, value: Int64?, line: Int)] = []
            var section: String?
            for (index, (present, number, unitIndex, spacing)) in settings.enumerated() where present {
                let key = Self.keys[index]
                let text: String
                let value: Int64?
                switch key.kind {
                case .integer(let range):
                    // Integers near the ends of their range as often as inside it.
                    let n = [Int64(number), range.lowerBound - 1, min(range.upperBound, 1 << 40) + Int64(number % 3)][
                        spacing]
                    text = String(n)
                    value = range.contains(n) ? n : nil
                case .size(let range):
                    let unit = Self.sizeUnits[unitIndex]
                    let spelled = [unit.0, unit.0.lowercased(), unit.0.uppercased()][spacing]
                    text = "\(number)" + (spacing == 2 && !spelled.isEmpty ? " " : "") + spelled
                    value = number >= 0 && range.contains(Int64(number) * unit.1) ? Int64(number) * unit.1 : nil
                case .duration(let range):
                    let unit = Self.durationUnits[unitIndex % Self.durationUnits.count]
                    text = "\(number)\(unit.0)"
                    value = number >= 0 && range.contains(Int64(number) * unit.1) ? Int64(number) * unit.1 : nil
                }
                if let nested = key.section, nested.hasPrefix("executors.NAME") {
                    // The executor's own keys, then its `limits` and `rlimits` mappings, in the table's order.
                    if section?.hasPrefix("executors.NAME") != true { lines += Self.executorLines }
                    if nested != section, let inner = nested.split(separator: ".").dropFirst(2).first {
                        lines.append("    \(inner):")
                    }
                    section = nested
                    lines.append((nested == "executors.NAME" ? "    " : "      ") + "\(key.key): \(text)")
                    expected.append((index, value, lines.count))
                    if nested == "executors.NAME.approval" { lines.append("      approvers: {roles: [admin]}") }
                    continue
                }
                if key.section != section {
                    section = key.section
                    if let name = key.section { lines.append("\(name):") }
                }
                lines.append((key.section == nil ? "" : "  ") + "\(key.key): \(text)")
                expected.append((index, value, lines.count))
            }
            Self.applyCeilings(&expected)
            let yaml = (lines + (lines.contains(Self.executorLines[0]) ? [] : [Self.executor])).joined(separator: "\n")
            let failures = Set(
                expected.filter { $0.value == nil }.map {
                    "\(Self.path($0.index).replacingOccurrences(of: ".NAME.", with: ".x.")):\($0.line)"
                })
            do throws(ConfigError) {
                let config = try ConfigLoader.parse(yaml: yaml, file: "p.yaml")
                #expect(failures.isEmpty, "accepted \(failures.sorted())\n\(yaml)")
                for item in expected where item.value != nil {
                    #expect(Self.keys[item.index].value(config) == item.value, "\(Self.path(item.index))\n\(yaml)")
                }
            } catch {
                let reported = Set(
                    error.diagnostics.filter { $0.severity == .error }.map { "\($0.keyPath):\($0.line)" })
                #expect(reported == failures, "\(error)\n\(yaml)")
            }
        }
    }

    static func path(_ index: Int) -> String {
        Self.keys[index].section.map { "\($0).\(Self.keys[index].key)" } ?? Self.keys[index].key
    }

    /// A size is its number times its unit, for every documented spelling in any case and with spaces; anything
    /// that overflows 64 bits or has another suffix is refused.
    @Test func sizesAreTheirNumberTimesTheirUnit() async {
        await propertyCheck(
            count: 500, input: Gen<Int64>.value(in: 0...Int64.max), Gen.int(in: 0...13), Gen<UInt8>.value(),
            Gen.letter.string(of: 1...3)
        ) { number, unitIndex, caseBits, junk in
            let unit = Self.sizeUnits[unitIndex]
            let spelled = String(
                unit.0.enumerated().map { offset, c in
                    caseBits >> offset & 1 == 1 ? Character(c.lowercased()) : Character(c.uppercased())
                })
            let (product, overflow) = number.multipliedReportingOverflow(by: unit.1)
            let text = caseBits & 0x80 != 0 ? " \(number) \(spelled) " : "\(number)\(spelled)"
            #expect(ConfigParser.parseSize(text) == (overflow ? nil : product), "\(text)")
            if !Self.sizeUnits.contains(where: { $0.0.lowercased() == junk.lowercased() }) {
                #expect(ConfigParser.parseSize("\(number)\(junk)") == nil)
            }
            #expect(ConfigParser.parseSize("-\(number)\(spelled)") == nil)
        }
    }

    /// Rules written in YAML (literals with any punctuation, lists of alternatives, regexes, path_under, a final
    /// `*`, deny) parse to exactly the matchers they spell, each with its own line.
    @Test func commandRulesRoundTripFromYAML() async {
        let word = Gen<String?>.element(of: [
            "plan", "a b", "-x", "*x", "it's", "\"q\"", "back\\slash", "é", "", "{}", "|",
        ])
        .map { $0! }
        let element = zip(Gen.int(in: 0...3), word.array(of: 1...3))
        let rule = zip(Gen.bool(0.3), element.array(of: 0...3), Gen.bool)
        await propertyCheck(count: 250, input: rule.array(of: 1...5)) { rules in
            var lines = [
                "executors:", "  x:", "    run_as: {user: nobody}", "    allow: {users: [\"*\"]}", "    commands:",
            ]
            var expected: [ArgvPattern] = []
            for (deny, elements, trailing) in rules {
                let matchers: [ArgumentMatcher] =
                    [.literal("cmd")]
                    + elements.map { kind, words in
                        switch kind {
                        case 0: .literal(words[0])
                        case 1: .oneOf(words)
                        case 2: .regex(words.map { $0.isEmpty ? "x" : "\\Q\($0)\\E" }.joined(separator: "|"))
                        default: .pathUnder("/srv/" + words[0])
                        }
                    }
                let shape =
                    matchers.map { matcher -> String in
                        switch matcher {
                        case .literal(let w): JSONText.quoted(w)
                        case .oneOf(let ws): JSONText.array(ws)
                        case .regex(let r): "{regex: \(JSONText.quoted(r))}"
                        case .pathUnder(let d): "{path_under: \(JSONText.quoted(d))}"
                        }
                    } + (trailing ? ["\"*\""] : [])
                let list = "[" + shape.joined(separator: ", ") + "]"
                lines.append("      - " + (deny ? "{deny: \(list)}" : list))
                expected.append(
                    ArgvPattern(
                        elements: matchers, allowsTrailingArguments: trailing, effect: deny ? .deny : .allow,
                        line: lines.count))
            }
            let yaml = lines.joined(separator: "\n")
            do {
                let config = try ConfigLoader.parse(yaml: yaml, file: "r.yaml")
                #expect(config.defaultExecutor.commands == .patterns(expected), "\(yaml)")
            } catch {
                Issue.record("\(error)\n\(yaml)")
            }
        }
    }

    /// Any one edit (a byte deleted, inserted or replaced) of a valid file never crashes the parser: it gives a
    /// configuration or errors, and every diagnostic names a line of the file (or the line after its end) and says
    /// something.
    @Test func anyEditOfAFileGivesAConfigOrPlacedDiagnostics() async {
        let base = """
            socket: {path: /run/runvoy/runvoyd.sock, mode: "0660"}
            limits:
              max_frame_bytes: 1048576
              idle_timeout: 30s
              max_argv_bytes: 1MiB
            history: {max_output_bytes: 64MiB, max_age: 30d, max_total_bytes: unlimited}
            roles:
              developer: {users: ["*"], groups: [adm]}
            executors:
              x:
                default: true
                run_as: {user: nobody}
                environment: {PATH: /usr/bin:/bin}
                allow: {users: ["*"]}
                commands:
                  - [echo, "*"]
                  - [ls, [-l, -a], {regex: "[a-z]+"}]
                  - {deny: [cat, {path_under: /etc}]}
            expect:
              - {user: alice, argv: [echo, hi], result: allow}
            """
        #expect(throws: Never.self) { try ConfigLoader.parse(yaml: base, file: "e.yaml") }
        let bytes = Array(base.utf8)
        let interesting = Array(":-[]{}\"'\n #*,&!|>%@`\t".utf8) + [0x00, 0xC3, 0xFF, 0x61, 0x30]
        await propertyCheck(
            count: 400, input: Gen.int(in: 0...2), Gen.int(in: 0...bytes.count),
            Gen<UInt8?>.element(of: interesting).map { $0! }
        ) { edit, position, byte in
            var text = bytes
            switch edit {
            case 0: if position < text.count { text.remove(at: position) }
            case 1: text.insert(byte, at: position)
            default: if position < text.count { text[position] = byte }
            }
            let yaml = String(decoding: text, as: UTF8.self)
            let lineCount = yaml.split(separator: "\n", omittingEmptySubsequences: false).count
            do throws(ConfigError) {
                _ = try ConfigLoader.parse(yaml: yaml, file: "e.yaml")
            } catch {
                #expect(!error.diagnostics.isEmpty)
                for diagnostic in error.diagnostics {
                    #expect((1...(lineCount + 1)).contains(diagnostic.line), "\(diagnostic)")
                    #expect(diagnostic.column >= 1 && !diagnostic.message.isEmpty, "\(diagnostic)")
                    #expect(diagnostic.description.hasPrefix("e.yaml:\(diagnostic.line):"))
                }
            }
        }
    }

    /// What the table in docs/CONFIGURATION.md "roles" says: a caller's permissions are the union over its roles,
    /// so adding a role never takes a permission away; admin holds every permission, and operator everything
    /// developer or viewer holds.
    @Test func permissionsAreTheUnionOverRolesAndFollowTheHierarchy() async {
        let roles = Gen<Role?>.element(of: Role.allCases).map { $0! }.array(of: 0...4).map(Set.init)
        await propertyCheck(count: 300, input: roles, roles) { a, b in
            for permission in Permission.allCases {
                let union = PermissionTable.permits(a.union(b), permission)
                #expect(union == (PermissionTable.permits(a, permission) || PermissionTable.permits(b, permission)))
                #expect(
                    PermissionTable.permits(a, permission)
                        == a.contains { PermissionTable.grants[$0, default: []].contains(permission) })
            }
            #expect(Set(PermissionTable.permissions(a)).isSubset(of: Set(PermissionTable.permissions(a.union(b)))))
        }
        let grants = PermissionTable.grants
        #expect(grants[.admin] == Set(Permission.allCases))
        #expect(grants[.developer, default: []].isSubset(of: grants[.operator, default: []]))
        #expect(grants[.viewer, default: []].isSubset(of: grants[.operator, default: []]))
    }

    /// How `capabilities` and denials show a word is unambiguous: read back (unquoting when quoted) it is the
    /// word, and a word that needs no quotes is shown as it is.
    @Test func displayedWordsReadBackAsTheWord() async {
        let character = Gen<Character?>.element(of: Array("ab \"'\\|{}<>*\t\u{1}é-=/")).map { $0! }
        await propertyCheck(count: 500, input: character.string(of: 0...8)) { word in
            let shown = ArgumentMatcher.literal(word).display
            if shown.hasPrefix("\"") && shown != word {
                var read = ""
                var escaped = false
                for c in shown.dropFirst().dropLast() {
                    if escaped {
                        read.append(c)
                        escaped = false
                    } else if c == "\\" {
                        escaped = true
                    } else {
                        #expect(c != "\"", "unescaped quote in \(shown)")
                        read.append(c)
                    }
                }
                #expect(read == word && shown.hasSuffix("\"") && !escaped)
            } else {
                #expect(shown == word && !word.isEmpty && !word.contains(" "))
            }
        }
    }
}
