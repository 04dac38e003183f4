import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyConfig

/// Playbook files: a valid one read into the model it describes, each error at its file, line and key path, and
/// the `playbooks` folder read beside the configuration file with the trust the daemon's own files get.
struct PlaybookConfigTests {
    static let main = """
        executors:
          web:
            default: true
            run_as: {user: nobody}
            max_timeout: 1h
            commands: any
          deploy:
            run_as: {user: root}
            commands: [[terraform, "*"]]
        """

    static func config() throws -> DaemonConfig {
        try ConfigLoader.parse(yaml: main, file: "runvoyd.yaml")
    }

    static func parse(_ yaml: String, name: String = "deploy") throws -> (PlaybookConfig?, [ConfigDiagnostic]) {
        ConfigLoader.parsePlaybook(yaml: yaml, file: "playbooks/\(name).yaml", name: name, config: try config())
    }

    /// The errors of a file, as `line key.path: message`.
    static func errors(_ yaml: String) throws -> [String] {
        let (playbook, diagnostics) = try parse(yaml)
        let errors = diagnostics.filter { $0.severity == .error }
        #expect((playbook == nil) == !errors.isEmpty)
        return errors.map { "\($0.line) \($0.keyPath): \($0.message)" }
    }

    static let valid = """
        description: Plan and apply
        access: {users: [nobody], roles: [operator]}
        parameters:
          env: {type: enum, values: [dev, prod], default: dev, description: Target}
          target: {type: string, pattern: "[a-z][a-z0-9-]*", required: true}
          count: {type: integer, min: 1, max: 10}
          force: {type: boolean, default: "false"}
          dir: {type: path, under: [/srv, /var/tmp]}
        steps:
          - name: plan
            executor: deploy
            argv: [terraform, plan, "-var=env={{env}}", "{{target}}"]
            timeout: 10m
          - name: notify
            argv: [/usr/bin/logger, "--count={{count}}x", "{{dir}}"]
            when: always
            continue_on_error: true
            trusted: true
        locks: [infra, {name: dns, shared: true}]
        approval: {count: 1, approvers: {roles: [admin]}}
        schedule: {calendar: "Mon..Fri 03:00", run_as_caller: nobody, params: {target: web, count: 3}}
        """

    /// Whether the calendar can be checked here (the check fails closed without `systemd-analyze`).
    static let canCheckCalendars = PlaybookCalendar.tools.contains { access($0, X_OK) == 0 }

    @Test(.enabled(if: canCheckCalendars, "needs systemd-analyze"))
    func aValidPlaybookIsReadIntoTheModel() throws {
        let (read, diagnostics) = try Self.parse(Self.valid)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        var expected = PlaybookConfig(
            name: "deploy",
            steps: [
                PlaybookStep(
                    name: "plan", executor: "deploy",
                    argv: [
                        ArgvTemplate(literal: "terraform"), ArgvTemplate(literal: "plan"),
                        ArgvTemplate(prefix: "-var=env=", parameter: "env"), ArgvTemplate(parameter: "target"),
                    ], line: 10),
                PlaybookStep(
                    name: "notify", executor: nil,
                    argv: [
                        ArgvTemplate(literal: "/usr/bin/logger"),
                        ArgvTemplate(prefix: "--count=", parameter: "count", suffix: "x"),
                        ArgvTemplate(parameter: "dir"),
                    ], line: 14),
            ], file: "playbooks/deploy.yaml")
        expected.description = "Plan and apply"
        expected.access = AccessList(users: ["nobody"], roles: [.operator])
        func parameter(_ name: String, _ type: PlaybookParameterType, _ line: Int) -> PlaybookParameter {
            PlaybookParameter(name: name, type: type, line: line)
        }
        expected.parameters = [
            parameter("env", .enumeration(["dev", "prod"]), 4),
            parameter("target", .string(pattern: "[a-z][a-z0-9-]*"), 5),
            parameter("count", .integer(min: 1, max: 10), 6), parameter("force", .boolean, 7),
            parameter("dir", .path(under: ["/srv", "/var/tmp"]), 8),
        ]
        expected.parameters[0].defaultValue = "dev"
        expected.parameters[0].description = "Target"
        expected.parameters[1].required = true
        expected.parameters[3].defaultValue = "false"
        expected.steps[0].timeout = .seconds(600)
        expected.steps[1].when = .always
        expected.steps[1].continueOnError = true
        expected.steps[1].trusted = true
        expected.locks = [ExecutorLock(name: "dns", shared: true), ExecutorLock(name: "infra", shared: false)]
        expected.approval = ApprovalPolicy(count: 1, approvers: AccessList(roles: [.admin]), line: 20)
        expected.schedule = PlaybookSchedule(
            calendar: "Mon..Fri 03:00", runAsCaller: "nobody", params: ["target": "web", "count": "3"], line: 21)
        #expect(read == expected)
    }

    @Test(arguments: [
        ("[terraform, \"{{nope}}\"]", "unknown parameter 'nope' (declared: env)"),
        ("[terraform, \"{{env}}{{env}}\"]", "at most one {{parameter}} per argument"),
        ("[\"{{env}}\", plan]", "the command must be literal: a parameter cannot choose the program"),
        ("[terraform, \"a}}b\"]", "'}}' without '{{' (there is no escaping)"),
        ("[terraform, \"{{env\"]", "'{{' without '}}' (there is no escaping)"),
        ("[terraform, \"{{ env }}\"]", "a placeholder is {{NAME}}, NAME a parameter's name (a-z, 0-9, '_'), no spaces"),
    ])
    func templateErrorsAreReportedAtTheirArgument(argv: String, message: String) throws {
        let index = argv.hasPrefix("[\"{{") ? 0 : 1
        let yaml = """
            parameters:
              env: {type: string}
            steps:
              - name: one
                argv: \(argv)
            """
        #expect(try Self.errors(yaml) == ["5 steps[0].argv[\(index)]: \(message)"])
    }

    @Test func defaultsMustBeValidForTheirType() throws {
        let yaml = """
            parameters:
              a: {type: integer, min: 1, max: 5, default: 9}
              b: {type: enum, values: [x, y], default: z}
              c: {type: path, under: [/srv], default: /etc/passwd}
              d: {type: string, pattern: "[0-9]+", default: abc}
              e: {type: boolean, default: yes}
              f: {type: integer, default: "007"}
              g: {type: string, default: "x", required: true}
            steps: [{name: one, argv: [/bin/true]}]
            """
        #expect(
            try Self.errors(yaml) == [
                "2 parameters.a.default: the default must be at most 5",
                "3 parameters.b.default: the default must be one of [\"x\",\"y\"]",
                "4 parameters.c.default: the default must be under \"/srv\"",
                "5 parameters.d.default: the default does not match the pattern \"[0-9]+\"",
                "6 parameters.e.default: the default must be true or false",
                "7 parameters.f.default: the default must be a decimal integer: an optional '-', then digits without "
                    + "leading zeros",
                "8 parameters.g.required: a parameter with a default is never required",
            ])
    }

    @Test func parameterDefinitionsAreChecked() throws {
        let yaml = """
            parameters:
              a: {type: string, pattern: "[a-"}
              b: {type: enum}
              c: {type: path, under: [srv]}
              d: {type: integer, min: 5, max: 1}
              e: {type: boolean, pattern: x}
              f: {type: float}
              Bad: {type: string}
            steps: [{name: one, argv: [/bin/true]}]
            """
        let errors = try Self.errors(yaml)
        #expect(errors.count == 7, "\(errors)")
        #expect(errors[0].hasPrefix("2 parameters.a.pattern: the pattern does not compile"))
        #expect(
            Array(errors.dropFirst()) == [
                "3 parameters.b.values: required for an enum parameter: the values it may take",
                "4 parameters.c.under[0]: 'srv' is not an absolute path",
                "5 parameters.d.max: 1 is below min 5",
                "6 parameters.e.pattern: `pattern` is not a key of a boolean parameter",
                "7 parameters.f.type: must be string, enum, integer, boolean or path",
                "8 parameters.Bad: parameter names are 1-64 characters of a-z, 0-9 and '_', starting with a letter",
            ])
    }

    @Test func stepsAreChecked() throws {
        let yaml = """
            steps:
              - {name: one, argv: [/bin/true]}
              - {name: one, argv: [/bin/false]}
              - {name: two, executor: nowhere, argv: [/bin/true]}
              - {name: three, argv: [/bin/true], when: sometimes}
              - {name: four, argv: []}
              - {argv: [/bin/true]}
              - {name: five, argv: [/bin/true], timeout: 2h}
            """
        #expect(
            try Self.errors(yaml) == [
                "3 steps[1].name: step name 'one' is already used by the step at line 2",
                "4 steps[2].executor: no executor 'nowhere' in the configuration (executors: 'web', 'deploy')",
                "5 steps[3].when: must be succeeded, failed or always",
                "6 steps[4].argv: expected the command and its arguments, [COMMAND, …]",
                "7 steps[5].name: required: unique in the playbook, spelt like an executor's name",
            ])
        let (_, diagnostics) = try Self.parse(yaml)
        #expect(
            diagnostics.filter { $0.severity == .warning }.map(\.message) == [
                "2h exceeds executor 'web''s max_timeout 1h, which bounds it"
            ])
        #expect(
            try Self.errors("description: x") == [
                "1 steps: required: at least one step, [{name: NAME, argv: [COMMAND, …]}]"
            ])
        #expect(try Self.errors("steps: []") == ["1 steps: expected a list of at least one step"])
        #expect(try Self.errors("") == ["1 : the file is empty; a playbook needs at least one step"])
    }

    @Test(.enabled(if: canCheckCalendars, "needs systemd-analyze"))
    func schedulesAreChecked() throws {
        func schedule(_ text: String) throws -> [String] {
            try Self.errors(
                """
                parameters:
                  target: {type: string, required: true}
                  count: {type: integer, max: 3}
                steps: [{name: one, argv: [/bin/echo, "{{target}}"]}]
                schedule: \(text)
                """)
        }
        #expect(try schedule("{calendar: daily, run_as_caller: nobody, params: {target: x}}") == [])
        let invalid = try schedule("{calendar: \"Mon..Fri 25:00\", run_as_caller: nobody, params: {target: x}}")
        #expect(invalid.count == 1)
        #expect(
            invalid.first?.hasPrefix("5 schedule.calendar: systemd does not accept the calendar expression") == true)
        #expect(
            try schedule("{calendar: daily, run_as_caller: \"no body\", params: {count: \"4\", other: 1}}") == [
                "5 schedule.run_as_caller: not a user name: 1-32 characters of letters, digits, '_', '.', '-', "
                    + "starting with a letter or '_'",
                "5 schedule.params: param 'other': not a parameter of playbook 'deploy'",
                "5 schedule.params: param 'target': required",
                "5 schedule.params: param 'count': must be at most 3",
            ])
        #expect(
            try schedule("{params: {target: x}}") == [
                "5 schedule.calendar: required: a systemd calendar expression (`OnCalendar=`)",
                "5 schedule.run_as_caller: required: the user the scheduled run is made as",
            ])
    }

    /// Without systemd-analyze no calendar passes unchecked.
    @Test(.enabled(if: !canCheckCalendars, "systemd-analyze is installed"))
    func withoutSystemdAnalyzeACalendarIsAnError() throws {
        let yaml = "steps: [{name: one, argv: [/bin/true]}]\nschedule: {calendar: daily, run_as_caller: nobody}"
        #expect(try Self.errors(yaml).first?.hasPrefix("2 schedule.calendar: cannot check the calendar") == true)
    }

    @Test func topLevelKeysAreCheckedAsInTheMainFile() throws {
        let yaml = """
            steps: [{name: one, argv: [/bin/true]}]
            lokcs: [a]
            access: {roles: [wizard]}
            approval: {count: 1}
            """
        #expect(
            try Self.errors(yaml) == [
                "2 lokcs: unknown key 'lokcs' (did you mean 'locks'?)",
                "3 access.roles[0]: unknown role 'wizard'; roles are admin, operator, developer, viewer",
                "4 approval.approvers: required when count is above 0: {users, groups, roles}",
            ])
    }

    /// The playbook sections of the schema are the ones the parser reads: each is reached from the file's top, and
    /// in each a key it does not declare is refused at its own key path, with the declared one a typo was meant as.
    @Test(.enabled(if: canCheckCalendars, "needs systemd-analyze"))
    func thePlaybookSchemaIsTheParsersSchema() throws {
        let paths = Set(ConfigSchema.playbookSections.map(\.path))
        let reached = Set(
            ConfigSchema.playbookSections.flatMap(\.keys).compactMap(\.type.sectionPath).filter(paths.contains))
        #expect(reached.union(["playbook"]) == paths)
        #expect(ConfigSchema.section(at: "playbook.steps[N]")?.names.contains("trusted") == true)
        let step = "{name: one, argv: [/bin/true]"
        let places: [(String, (String) -> String)] = [
            ("", { "steps: [\(step)}]\n\($0): 1" }),
            ("parameters.p.", { "parameters: {p: {type: string, \($0): 1}}\nsteps: [\(step)}]" }),
            ("steps[0].", { "steps: [\(step), \($0): 1}]" }),
            ("schedule.", { "steps: [\(step)}]\nschedule: {calendar: daily, run_as_caller: nobody, \($0): 1}" }),
        ]
        for (section, (prefix, file)) in zip(ConfigSchema.playbookSections, places) {
            let unknown = try Self.errors(file("bogus_key")).map { String($0.drop { $0 != " " }.dropFirst()) }
            #expect(unknown == ["\(prefix)bogus_key: unknown key 'bogus_key'"], "\(section.path)")
            for key in section.keys {
                let typo = String(key.name.prefix(1)) + "x" + key.name.dropFirst()
                let found = try Self.errors(file(typo))
                let expected = "\(prefix)\(typo): unknown key '\(typo)' (did you mean '\(key.name)'?)"
                #expect(found.contains { $0.hasSuffix(expected) }, "\(found)")
            }
        }
    }

    // MARK: - The folder

    final class Scratch {
        let root: String
        init() throws {
            var template = Array("/tmp/runvoy-playbooks-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
            root = String(cString: made)
            try PlaybookConfigTests.main.write(toFile: config, atomically: false, encoding: .utf8)
        }
        var config: String { root + "/runvoyd.yaml" }
        var folder: String { root + "/playbooks" }
        func write(_ name: String, _ text: String, mode: mode_t = 0o644) throws {
            mkdir(folder, 0o755)
            try text.write(toFile: folder + "/" + name, atomically: false, encoding: .utf8)
            chmod(folder + "/" + name, mode)
        }
        deinit { _ = system("rm -rf '\(root)'") }
    }

    static let minimal = "steps: [{name: one, argv: [/bin/true]}]\n"

    @Test func theFolderIsReadInNameOrderAndFoldedIntoTheDigest() throws {
        let scratch = try Scratch()
        let without = try ConfigLoader.load(path: scratch.config)
        #expect(without.playbooks.isEmpty)
        try scratch.write("zeta.yaml", Self.minimal)
        try scratch.write("alpha.yaml", Self.minimal)
        try scratch.write("notes.txt", "not a playbook")
        try scratch.write(".alpha.yaml.swp", "editor state")
        let with = try ConfigLoader.load(path: scratch.config)
        #expect(with.playbooks.map(\.name) == ["alpha", "zeta"])
        #expect(with.playbook(named: "zeta")?.file == scratch.folder + "/zeta.yaml")
        #expect(with.digest != without.digest)
        #expect(
            with.warnings.map(\.description) == [
                "\(scratch.folder)/notes.txt:1:1: warning: ignored: only NAME.yaml files are playbooks"
            ])
    }

    /// Another user's file, a file others may write and a link are refused, as is a folder others may write: a
    /// playbook decides what runs as its executors' users.
    @Test func filesNotTrustedAsTheDaemonsOwnAreRefused() throws {
        func errors(_ scratch: Scratch) -> [String] {
            do {
                _ = try ConfigLoader.load(path: scratch.config)
                return []
            } catch {
                return error.diagnostics.filter { $0.severity == .error }.map(\.description)
            }
        }
        let writable = try Scratch()
        try writable.write("open.yaml", Self.minimal, mode: 0o666)
        #expect(errors(writable).first?.contains("open.yaml:1:1: error: the file is writable by others") == true)

        let link = try Scratch()
        try link.write("real.txt", Self.minimal)
        symlink(link.folder + "/real.txt", link.folder + "/linked.yaml")
        #expect(errors(link) == ["\(link.folder)/linked.yaml:1:1: error: is a symbolic link; refused"])

        let owned = try Scratch()
        try owned.write("theirs.yaml", Self.minimal)
        chown(owned.folder + "/theirs.yaml", geteuid() == 0 ? 65534 : 0, gid_t.max)
        #expect(errors(owned).first?.contains("theirs.yaml:1:1: error: the file belongs to uid") == true)

        let linkedFolder = try Scratch()
        mkdir(linkedFolder.root + "/real", 0o755)
        try Self.minimal.write(toFile: linkedFolder.root + "/real/x.yaml", atomically: false, encoding: .utf8)
        symlink(linkedFolder.root + "/real", linkedFolder.folder)
        #expect(
            errors(linkedFolder) == [
                "\(linkedFolder.folder):1:1: error: is a symbolic link; the playbooks folder must be a real directory"
            ])

        let folder = try Scratch()
        try folder.write("fine.yaml", Self.minimal)
        chmod(folder.folder, 0o777)
        #expect(errors(folder).first?.contains("playbooks:1:1: error: the folder is writable by others") == true)
    }

    @Test func anErrorInAPlaybookFailsTheWholeConfiguration() throws {
        let scratch = try Scratch()
        try scratch.write("good.yaml", Self.minimal)
        try scratch.write("bad.yaml", "steps:\n  - name: one\n    argv: [\"{{x}}\"]\n")
        do {
            _ = try ConfigLoader.load(path: scratch.config)
            Issue.record("a bad playbook loaded")
        } catch {
            #expect(
                error.diagnostics.map(\.description) == [
                    "\(scratch.folder)/bad.yaml:3:12: error: steps[0].argv[0]: the command must be literal: a "
                        + "parameter cannot choose the program"
                ])
        }
    }
}
