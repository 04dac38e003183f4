import Foundation
import Glibc
import Testing

@testable import RunvoyConfig

/// A value of the wrong shape (a list where a mapping belongs, a mapping where a word does, a key that is not a
/// string) in any section of the main file: each is an error at its own file, line and key path, and says what
/// was expected there.
struct ConfigShapeTests {
    /// The errors of a main file, as `file:line key.path: message`.
    static func errors(_ yaml: String) -> [String] {
        ConfigLoaderTests.diagnostics(yaml).filter { $0.severity == .error }.map {
            "\($0.file):\($0.line) \($0.keyPath): \($0.message)"
        }
    }

    /// An executor `web` whose body (after `run_as`) starts on line 4.
    static func executor(_ body: String) -> String {
        "executors:\n  web:\n    run_as: {user: nobody}\n" + body
    }

    static let web = executor("    commands: any\n")

    @Test(arguments: [
        (
            "executors: [web]",
            ["test.yaml:1 executors: expected a mapping of executor names to definitions"]
        ),
        (
            "executors:\n  [web]: {run_as: {user: nobody}, commands: any}\n  api: {run_as: {user: nobody}, commands: any}",
            ["test.yaml:2 executors: executor names must be strings"]
        ),
        (
            web + "roles: [admin]",
            [
                "test.yaml:5 roles: expected a mapping of role names (admin, operator, developer, viewer) to "
                    + "{users, groups}"
            ]
        ),
        (web + "roles:\n  [admin]: {users: [root]}", ["test.yaml:6 roles: role names are strings"]),
        (
            web + "expect: {user: root}",
            [
                "test.yaml:5 expect: expected a list such as [{user: alice, executor: deploy, argv: "
                    + "[terraform, apply], result: deny}]"
            ]
        ),
        (web + "expect: [root]", ["test.yaml:5 expect[0]: expected a mapping of keys to values"]),
        (web + "admin_contact: [ops]", ["test.yaml:5 admin_contact: expected a string"]),
        (web + "hooks: [pre_exec]", ["test.yaml:5 hooks[0]: expected a mapping of keys to values"]),
        (
            web + "hooks: [{name: n, event: pre_exec, command: [/bin/echo, \"a\\0b\"], user: nobody}]",
            ["test.yaml:5 hooks[0].command: arguments may not contain NUL"]
        ),
        (
            web + "limits:\n  rates:\n    users: {[alice]: {exec_rate: 1/s}}\n    roles: {admin: 5/s}",
            [
                "test.yaml:8 limits.rates.roles.admin: expected a mapping of keys to values",
                "test.yaml:7 limits.rates.users: names must be strings",
            ]
        ),
    ])
    func aTopLevelSectionOfTheWrongShapeIsRefusedWhereItStands(yaml: String, expected: [String]) {
        #expect(Self.errors(yaml) == expected)
    }

    @Test(arguments: [
        ("    commands: some", ["test.yaml:4 executors.web.commands: expected `any` or a list of rules"]),
        ("    commands: {allow: [ls]}", ["test.yaml:4 executors.web.commands: expected `any` or a list of rules"]),
        (
            "    commands: [{allow: [ls], approval: yes}]",
            ["test.yaml:4 executors.web.commands[0].approval: expected a mapping of keys to values"]
        ),
        (
            "    commands: any\n    approval: {count: 1, approvers: admin}",
            ["test.yaml:5 executors.web.approval.approvers: expected a mapping of keys to values"]
        ),
        (
            "    commands: any\n    break_glass: admin",
            ["test.yaml:5 executors.web.break_glass: expected a mapping of keys to values"]
        ),
        ("    commands: any\n    tty: sometimes", ["test.yaml:5 executors.web.tty: must be allow, deny or require"]),
        (
            "    commands: any\n    allow_env: [LANG, \"1BAD\", \"*\", \"A-B*\", [PATH]]",
            [
                "test.yaml:5 executors.web.allow_env[4]: expected a string",
                "test.yaml:5 executors.web.allow_env[1]: '1BAD' is not an environment name or prefix*",
                "test.yaml:5 executors.web.allow_env[3]: 'A-B*' is not an environment name or prefix*",
            ]
        ),
        (
            "    commands: any\n    environment: {\"1X\": y, OK: z}",
            [
                "test.yaml:5 executors.web.environment: environment names are letters, digits and '_', not "
                    + "starting with a digit"
            ]
        ),
        (
            "    commands: any\n    secret_files:\n      \"9KEY\": {secret: k}\n      KEY: k",
            [
                "test.yaml:6 executors.web.secret_files: environment names are letters, digits and '_', not "
                    + "starting with a digit",
                "test.yaml:7 executors.web.secret_files.KEY: expected a mapping of keys to values",
            ]
        ),
    ])
    func anExecutorKeyOfTheWrongShapeIsRefusedWhereItStands(body: String, expected: [String]) {
        #expect(Self.errors(Self.executor(body)) == expected)
    }

    /// An empty key is unknown like any other, and nothing is suggested for it.
    @Test func anEmptyKeyIsUnknownWithoutASuggestion() {
        #expect(Self.errors(Self.web + "\"\": 1") == ["test.yaml:5 : unknown key ''"])
        #expect(ConfigParser.editDistance("", "mode") == 4)
        #expect(ConfigParser.editDistance("mode", "") == 4)
        #expect(ConfigParser.editDistance("mdoe", "mode") == 2)
    }

    /// A mode may be written `0o660` as well as `0660`.
    @Test func aModeMayCarryTheOctalPrefix() throws {
        let config = try ConfigLoader.parse(yaml: Self.web + "socket: {mode: \"0o640\"}", file: "test.yaml")
        #expect(config.socket.mode == 0o640)
        #expect(
            Self.errors(Self.web + "socket: {mode: \"0o999\"}") == [
                "test.yaml:5 socket.mode: expected octal permission bits such as \"0660\""
            ])
    }

    /// Every cgroup limit an executor sets is written to its own file, in a fixed order, under its controller.
    @Test func everyCgroupLimitHasItsFileAndController() throws {
        func files(_ limits: String) throws -> [String] {
            let yaml = Self.executor("    commands: any\n    limits: {\(limits)}")
            let executor = try #require(try ConfigLoader.parse(yaml: yaml, file: "test.yaml").executor(named: "web"))
            return executor.limits.cgroupFiles.map {
                "\(ExecutionLimits.controller(of: $0.file)) \($0.file)=\($0.value)"
            }
        }
        #expect(
            try files("memory_max: 64MiB, memory_swap_max: 0, cpu_quota: 150, tasks_max: 32, io_weight: 50") == [
                "memory memory.max=67108864", "memory memory.swap.max=0", "cpu cpu.max=150000 100000",
                "pids pids.max=32", "io io.weight=default 50",
            ])
        #expect(try files("cpu_weight: 200") == ["cpu cpu.weight=200"])
        #expect(try files("").isEmpty)
    }

    /// A file that is not UTF-8 text is refused before it is parsed, naming the file.
    @Test func aFileThatIsNotTextIsReportedAsUnreadable() throws {
        var template = Array("/tmp/runvoy-config-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { _ = system("rm -rf '\(directory)'") }
        let path = directory + "/runvoyd.yaml"
        try Data([0x65, 0x78, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: path))
        do {
            _ = try ConfigLoader.load(path: path)
            Issue.record("a file that is not UTF-8 loaded")
        } catch {
            #expect(
                error.diagnostics.map(\.description) == [
                    "\(path):0:0: error: cannot read the file: The file isn’t in the correct format."
                ])
        }
    }
}
