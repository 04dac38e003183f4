import Testing

@testable import RunvoyConfig

/// `hooks` and `executors.NAME.hooks`: every key, the defaults, and the errors with their file:line.
@Suite struct HookConfigTests {
    static let executor = "executors: {x: {run_as: {user: nobody}, commands: any}}"

    func parse(_ yaml: String) throws -> DaemonConfig {
        try ConfigLoader.parse(yaml: yaml, file: "hooks.yaml")
    }

    func errors(_ yaml: String) -> [ConfigDiagnostic] {
        ConfigLoaderTests.diagnostics(yaml).filter { $0.severity == .error }
    }

    @Test func everyKeyIsRead() throws {
        let config = try parse(
            """
            hooks:
              - {name: window, event: pre_exec, command: [/usr/bin/test, -e, /etc/open], user: nobody}
              - name: chat
                event: post_exec
                command: [/bin/true]
                user: nobody
                group: nogroup
                timeout: 30s
                on_error: deny
            executors:
              x:
                run_as: {user: nobody}
                commands: any
                hooks: [{name: page, event: on_break_glass, command: [/bin/true], user: root, on_error: allow}]
            """)
        #expect(config.hooks.map(\.name) == ["window", "chat"])
        let window = config.hooks[0]
        #expect(window.event == .preExec && window.command == ["/usr/bin/test", "-e", "/etc/open"])
        #expect(window.timeout == .seconds(10) && window.onError == .deny && window.group == nil)
        #expect(window.line == 2)
        let chat = config.hooks[1]
        #expect(chat.event == .postExec && chat.group == "nogroup" && chat.timeout == .seconds(30))
        #expect(chat.onError == .deny)
        let page = try #require(config.executor(named: "x")?.hooks.first)
        #expect(page.event == .onBreakGlass && page.user == "root" && page.onError == .allow)
        #expect(config.warnings.contains { $0.keyPath == "executors.x.hooks[0].user" && $0.message.contains("root") })
    }

    @Test func onErrorDefaultsByEvent() {
        #expect(HookEvent.preExec.defaultOnError == .deny)
        #expect(HookEvent.onApprovalRequest.defaultOnError == .deny)
        #expect(HookEvent.postExec.defaultOnError == .allow)
        #expect(HookEvent.onBreakGlass.defaultOnError == .allow)
    }

    @Test(arguments: [
        ("{name: a, event: pre_exec, command: [true], user: nobody}", "hooks[0].command", "absolute path"),
        ("{name: a, event: pre_exec, command: [], user: nobody}", "hooks[0].command", "absolute path"),
        ("{name: a, event: later, command: [/bin/true], user: nobody}", "hooks[0].event", "must be one of"),
        ("{name: A!, event: pre_exec, command: [/bin/true], user: nobody}", "hooks[0].name", "hook names"),
        ("{name: a, event: pre_exec, command: [/bin/true], user: no-such-user-x}", "hooks[0].user", "unknown user"),
        (
            "{name: a, event: pre_exec, command: [/bin/true], user: nobody, on_error: maybe}", "hooks[0].on_error",
            "deny or allow"
        ),
        (
            "{name: a, event: pre_exec, command: [/bin/true], user: nobody, timeout: 0s}", "hooks[0].timeout",
            "between 1s and 10m"
        ),
        (
            "{name: a, event: pre_exec, command: [/bin/true], user: nobody, timeout: 11m}", "hooks[0].timeout",
            "between 1s and 10m"
        ),
        ("{event: pre_exec, command: [/bin/true], user: nobody}", "hooks[0].name", "required"),
        ("{name: a, command: [/bin/true], user: nobody}", "hooks[0].event", "required"),
        ("{name: a, event: pre_exec, user: nobody}", "hooks[0].command", "required"),
        ("{name: a, event: pre_exec, command: [/bin/true]}", "hooks[0].user", "required"),
    ])
    func wrongHooksAreReportedWithTheirPathAndLine(hook: String, path: String, message: String) {
        let found = errors("\(Self.executor)\nhooks: [\(hook)]")
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.keyPath == path, "\(found)")
        #expect(found.first?.message.contains(message) == true, "\(found)")
        #expect(found.first?.line == 2, "\(found)")
    }

    @Test func namesAreUniquePerListOnly() throws {
        let one = "{name: a, event: post_exec, command: [/bin/true], user: nobody}"
        let found = errors("\(Self.executor)\nhooks: [\(one), \(one)]")
        #expect(found.map(\.keyPath) == ["hooks[1].name"])
        let config = try parse(
            "hooks: [\(one)]\nexecutors: {x: {run_as: {user: nobody}, commands: any, hooks: [\(one)]}}")
        #expect(config.hooks.count == 1 && config.executors[0].hooks.count == 1)
    }

    @Test func aListIsRequired() {
        #expect(errors("\(Self.executor)\nhooks: {name: a}").map(\.keyPath) == ["hooks"])
    }

    /// `editable` on an executor with `pre_exec` hooks, its own or global: every edit there is refused (review of
    /// hooks, H1), which check-config says; `post_exec` hooks alone do not refuse edits.
    @Test func editableOnAnExecutorWithPreExecHooksIsWarnedOf() throws {
        let pre = "{name: w, event: pre_exec, command: [/bin/true], user: nobody}"
        let post = "{name: p, event: post_exec, command: [/bin/true], user: nobody}"
        func warned(_ yaml: String) throws -> Bool {
            try parse(yaml).warnings.contains {
                $0.keyPath == "executors.x.editable" && $0.message.contains("pre_exec hooks")
            }
        }
        let executor = "executors: {x: {run_as: {user: nobody}, commands: any, editable: [/etc/x]"
        #expect(try warned("\(executor), hooks: [\(pre)]}}"))
        #expect(try warned("hooks: [\(pre)]\n\(executor)}}"))
        #expect(try !warned("hooks: [\(post)]\n\(executor), hooks: [\(post)]}}"))
    }
}
