import Testing

@testable import RunvoyConfig

/// A playbook file with a value of the wrong shape in its parameters, steps or schedule: each is an error at the
/// playbook's file, the value's line and key path, saying what was expected there.
struct PlaybookShapeTests {
    static let step = "steps: [{name: one, argv: [/bin/true]}]\n"

    /// The errors of `playbooks/NAME.yaml`, as `file:line key.path: message`.
    static func errors(_ yaml: String, name: String = "deploy") throws -> [String] {
        let (playbook, diagnostics) = try PlaybookConfigTests.parse(yaml, name: name)
        let errors = diagnostics.filter { $0.severity == .error }
        #expect((playbook == nil) == !errors.isEmpty)
        return errors.map { "\($0.file):\($0.line) \($0.keyPath): \($0.message)" }
    }

    /// One parameter (on line 2) that is wrong.
    @Test(arguments: [
        ("a: string", "parameters.a: expected a mapping of keys to values"),
        ("a: {description: x}", "parameters.a.type: required: string, enum, integer, boolean or path"),
        ("a: {type: [string]}", "parameters.a.type: expected a string"),
        ("a: {type: string, default: [x]}", "parameters.a.default: expected a string"),
        ("a: {type: string, pattern: [x]}", "parameters.a.pattern: expected a string"),
        ("a: {type: enum, values: x}", "parameters.a.values: expected a list of strings"),
        ("a: {type: enum, values: []}", "parameters.a.values: an enum parameter needs at least one value"),
        (
            "a: {type: enum, values: [ok, \"x\\ty\"]}",
            "parameters.a.values[1]: the value contains the control character U+0009 at character 2"
        ),
        ("a: {type: enum, values: [x, y, x]}", "parameters.a.values[2]: \"x\" is listed twice"),
        ("a: {type: integer, min: 1, max: ten}", "parameters.a.max: expected an integer"),
        ("a: {type: integer, min: one}", "parameters.a.min: expected an integer"),
        ("a: {type: path}", "parameters.a.under: required for a path parameter: the directories values must be in"),
        ("a: {type: path, under: /srv}", "parameters.a.under: expected a list of strings"),
        ("a: {type: path, under: []}", "parameters.a.under: a path parameter needs at least one directory"),
        (
            "a: {type: path, under: [/srv, /opt], default: /etc}",
            "parameters.a.default: the default must be under one of [\"/srv\",\"/opt\"]"
        ),
    ])
    func aWrongParameterIsRefusedWhereItStands(parameter: String, message: String) throws {
        #expect(try Self.errors("parameters:\n  \(parameter)\n" + Self.step) == ["playbooks/deploy.yaml:2 \(message)"])
    }

    @Test func parametersMustBeAMappingOfNames() throws {
        #expect(
            try Self.errors("parameters: [a]\n" + Self.step) == [
                "playbooks/deploy.yaml:1 parameters: expected a mapping of parameter names to {type: …}"
            ])
        #expect(
            try Self.errors("parameters:\n  [a]: {type: string}\n" + Self.step) == [
                "playbooks/deploy.yaml:2 parameters: parameter names must be strings"
            ])
    }

    /// One step (on line 2) that is wrong.
    @Test(arguments: [
        ("x", "steps[0]: expected a mapping of keys to values"),
        (
            "{name: \"Bad!\", argv: [/bin/true]}",
            "steps[0].name: step names are 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
        ),
        (
            "{name: one, executor: 5, argv: [/bin/true]}",
            "steps[0].executor: '5' is read as a number, not a string; quote it"
        ),
        ("{name: one, argv: /bin/true}", "steps[0].argv: expected a list of strings"),
    ])
    func aWrongStepIsRefusedWhereItStands(step: String, message: String) throws {
        #expect(try Self.errors("steps:\n  - \(step)\n") == ["playbooks/deploy.yaml:2 \(message)"])
    }

    @Test func thePlaybooksNameIsTheFilesAndMustBeSpeltLikeAnExecutors() throws {
        #expect(
            try Self.errors(Self.step, name: "Deploy Now") == [
                "playbooks/Deploy Now.yaml:1 : playbook names (the file name without .yaml) are 1-64 characters of a-z, "
                    + "0-9, '_', '.', '-', starting with a letter or digit"
            ])
    }

    /// `approval: {count: 0}` asks for no approval: the playbook has none.
    @Test func anApprovalOfNoOneIsNoApproval() throws {
        let (playbook, diagnostics) = try PlaybookConfigTests.parse(Self.step + "approval: {count: 0}")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(try #require(playbook).approval == nil)
    }

    /// A schedule (on line 4) of the wrong shape, with a wrong user or parameters.
    @Test(arguments: [
        ("daily", ["schedule: expected a mapping of keys to values"]),
        (
            "{calendar: daily, run_as_caller: nobody, params: [a]}",
            ["schedule.params: expected a mapping of names to values", "schedule.params: param 'target': required"]
        ),
        (
            "{calendar: daily, run_as_caller: nobody, params: {target: x, [a]: b, count: [1]}}",
            [
                "schedule.params: names must be plain strings",
                "schedule.params.count: expected a value written as a scalar",
            ]
        ),
        ("{calendar: daily, run_as_caller: nobody}", ["schedule.params: param 'target': required"]),
        (
            "{calendar: daily, run_as_caller: \"\", params: {target: x}}",
            [
                "schedule.run_as_caller: not a user name: 1-32 characters of letters, digits, '_', '.', '-', "
                    + "starting with a letter or '_'"
            ]
        ),
        (
            "{calendar: \"daily\\u0007\", run_as_caller: nobody, params: {target: x}}",
            ["schedule.calendar: the calendar contains the control character U+0007 at character 6"]
        ),
    ])
    func aWrongScheduleIsRefusedWhereItStands(schedule: String, expected: [String]) throws {
        let yaml = """
            parameters: {target: {type: string, required: true}, count: {type: integer}}
            steps: [{name: one, argv: [/bin/echo, "{{target}}"]}]

            schedule: \(schedule)
            """
        #expect(try Self.errors(yaml) == expected.map { "playbooks/deploy.yaml:4 \($0)" })
    }

    /// A user name may end in `$` (machine accounts), as `useradd` allows.
    @Test(.enabled(if: PlaybookConfigTests.canCheckCalendars, "needs systemd-analyze"))
    func aScheduleMayRunAsAMachineAccount() throws {
        let (playbook, diagnostics) = try PlaybookConfigTests.parse(
            Self.step + "schedule: {calendar: daily, run_as_caller: \"host01$\"}")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(try #require(playbook).schedule?.runAsCaller == "host01$")
        #expect(ConfigParser.isValidUserName("_svc-1.a"))
        #expect(!ConfigParser.isValidUserName("$"))
        #expect(!ConfigParser.isValidUserName(String(repeating: "a", count: 33)))
    }
}
