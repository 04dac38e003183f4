import RunvoyConfig
import RunvoyKit
import Testing

struct ConfigLoaderTests {
    static let example = """
        # runvoyd configuration
        socket:
          path: /run/runvoy/runvoyd.sock
          mode: "0660"
          group: nogroup
        state_directory: /var/lib/runvoy
        admin_contact: "ops@example.com"
        limits:
          max_frame_bytes: 1048576
          idle_timeout: 30s
          max_connections: 4096
          max_executions: 256
        shutdown_grace: 30s
        kill_grace: 5s
        audit:
          fail_closed: true
        executors:
          default:
            default: true
            description: Unprivileged sandbox
            run_as: {user: nobody, group: nogroup}
            environment:
              PATH: /usr/local/bin:/usr/bin:/bin
              HOME: /
            allow_env: [LANG, TF_VAR_*]
            working_directory: /
            timeout: 1h
            max_timeout: 24h
            allow:
              users: ["*"]
            commands: any
          deploy:
            run_as: {user: root}
            allow: {users: [root], groups: [nogroup]}
            commands:
              - [terraform, plan, "*"]
              - [/usr/bin/systemctl, restart, nginx]
        """

    static func diagnostics(_ yaml: String) -> [ConfigDiagnostic] {
        do {
            _ = try ConfigLoader.parse(yaml: yaml, file: "test.yaml")
            return []
        } catch {
            return error.diagnostics
        }
    }

    static func minimal(_ executorBody: String) -> String {
        "executors:\n  web:\n" + executorBody
    }

    @Test func theDocumentedExampleParses() throws {
        let config = try ConfigLoader.parse(yaml: Self.example, file: "example.yaml")
        #expect(config.socket.path == "/run/runvoy/runvoyd.sock")
        #expect(config.socket.mode == 0o660)
        #expect(config.socket.group == "nogroup")
        #expect(config.limits.maxFrameBytes == 1_048_576)
        #expect(config.limits.idleTimeout == .seconds(30))
        #expect(config.shutdownGrace == .seconds(30))
        #expect(config.killGrace == .seconds(5))
        #expect(config.audit.failClosed)
        #expect(config.adminContact == "ops@example.com")
        #expect(config.executors.map(\.name) == ["default", "deploy"])
        #expect(config.defaultExecutorName == "default")
        let sandbox = config.defaultExecutor
        #expect(sandbox.runAs == RunAs(user: "nobody", group: "nogroup"))
        #expect(sandbox.environment == ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/"])
        #expect(sandbox.defaultTimeout == .seconds(3600))
        #expect(sandbox.maxTimeout == .seconds(86400))
        #expect(sandbox.commands == .any)
        #expect(sandbox.line == 18)
        let deploy = try #require(config.executor(named: "deploy"))
        #expect(deploy.runAs == RunAs(user: "root", group: nil))
        #expect(deploy.access == AccessList(users: ["root"], groups: ["nogroup"]))
        guard case .patterns(let patterns) = deploy.commands else {
            Issue.record("expected patterns")
            return
        }
        #expect(patterns.count == 2)
        #expect(patterns[0] == ArgvPattern(elements: ["terraform", "plan"], allowsTrailingArguments: true, line: 36))
        #expect(config.digest.count == 16)
    }

    @Test func theEmbeddedDefaultParses() {
        let config = ConfigLoader.embeddedDefault(stateRoot: "/tmp/x", runAsUser: "nobody", runAsGroup: "nogroup")
        #expect(config.socket.path == "/tmp/x/runvoyd.sock")
        #expect(config.stateDirectory == "/tmp/x/state")
        #expect(!config.audit.failClosed)
        #expect(config.defaultExecutor.runAs == RunAs(user: "nobody", group: "nogroup"))
        #expect(config.defaultExecutor.access.admits(userName: "anyone", groupNames: []))
    }

    @Test func unknownKeysAreErrorsWithASuggestion() {
        let found = Self.diagnostics(Self.minimal("    run_as: {user: nobody}\n    tiemout: 5m\n    commands: any\n"))
        #expect(found.count == 1)
        #expect(found.first?.line == 4)
        #expect(found.first?.keyPath == "executors.web.tiemout")
        #expect(found.first?.message.contains("did you mean 'timeout'") == true)
        #expect(found.first?.description.hasPrefix("test.yaml:4:") == true)
    }

    @Test func wrongTypesAreErrors() {
        let found = Self.diagnostics(
            "limits:\n  max_connections: lots\nexecutors:\n  web:\n    run_as: {user: nobody}\n    commands: any\n")
        #expect(found.map(\.keyPath) == ["limits.max_connections"])
        #expect(found.first?.line == 2)
    }

    @Test func unknownUsersAndGroupsAreErrors() {
        let found = Self.diagnostics(
            Self.minimal("    run_as: {user: no-such-user-xyz, group: no-such-group-xyz}\n    commands: any\n"))
        #expect(Set(found.map(\.keyPath)) == ["executors.web.run_as.user", "executors.web.run_as.group"])
        #expect(found.allSatisfy { $0.line == 3 })
    }

    @Test func unknownUsersInAllowListsAreOnlyWarnings() throws {
        let config = try ConfigLoader.parse(
            yaml: Self.minimal("    run_as: {user: nobody}\n    allow: {users: [ghost-user-xyz]}\n    commands: any\n"),
            file: "test.yaml")
        #expect(config.warnings.count == 1)
        #expect(config.warnings.first?.severity == .warning)
        #expect(config.warnings.first?.keyPath == "executors.web.allow.users[0]")
    }

    @Test func relativeWorkingDirectoryIsAnError() {
        let found = Self.diagnostics(
            Self.minimal("    run_as: {user: nobody}\n    working_directory: srv\n    commands: any\n"))
        #expect(found.map(\.keyPath) == ["executors.web.working_directory"])
        #expect(found.first?.line == 4)
    }

    @Test func timeoutAboveMaximumIsAnError() {
        let found = Self.diagnostics(
            Self.minimal("    run_as: {user: nobody}\n    timeout: 2h\n    max_timeout: 1h\n    commands: any\n"))
        #expect(found.map(\.keyPath) == ["executors.web.timeout"])
    }

    @Test func twoDefaultsAreAnError() {
        let yaml = """
            executors:
              a:
                default: true
                run_as: {user: nobody}
                commands: any
              b:
                default: true
                run_as: {user: nobody}
                commands: any
            """
        let found = Self.diagnostics(yaml)
        #expect(found.map(\.keyPath) == ["executors.b.default"])
        #expect(found.first?.line == 6)
    }

    @Test func severalExecutorsNeedADefault() {
        let yaml =
            "executors:\n  a:\n    run_as: {user: nobody}\n    commands: any\n  b:\n    run_as: {user: nobody}\n    commands: any\n"
        #expect(Self.diagnostics(yaml).first?.message.contains("default: true") == true)
    }

    @Test func noExecutorsIsAnError() {
        #expect(Self.diagnostics("socket:\n  path: /tmp/s\n").map(\.keyPath) == ["executors"])
        #expect(Self.diagnostics("").count == 1)
    }

    @Test func starOnlyAtTheEndOfAPattern() {
        let found = Self.diagnostics(
            Self.minimal("    run_as: {user: nobody}\n    commands:\n      - [git, \"*\", push]\n"))
        #expect(found.map(\.keyPath) == ["executors.web.commands[0]"])
        #expect(found.first?.line == 5)
    }

    @Test func yamlSyntaxErrorsCarryTheirLine() {
        let found = Self.diagnostics("executors:\n  web:\n    run_as: {user: nobody\n    commands: any\n")
        #expect(found.count == 1)
        #expect(found.first?.message.hasPrefix("YAML syntax") == true)
        #expect((found.first?.line ?? 0) >= 3)
    }

    @Test func duplicateKeysAreErrors() {
        let found = Self.diagnostics(Self.minimal("    run_as: {user: nobody}\n    commands: any\n    commands: any\n"))
        #expect(found.first?.message.contains("duplicate key") == true)
    }

    @Test func unquotedNumbersInTheEnvironmentAreRefused() {
        let found = Self.diagnostics(
            Self.minimal(
                "    run_as: {user: nobody}\n    environment: {PORT: 8080, DEBUG: \"true\"}\n    commands: any\n"))
        #expect(found.map(\.keyPath) == ["executors.web.environment.PORT"])
        #expect(found.first?.message.contains("quote it") == true)
    }

    @Test func everyErrorIsReportedNotJustTheFirst() {
        let yaml = """
            limits:
              idle_timeout: soon
            executors:
              web:
                run_as: {user: no-such-user-xyz}
                working_directory: relative
                commands: [[]]
            """
        let found = Self.diagnostics(yaml)
        #expect(
            Set(found.map(\.keyPath)) == [
                "limits.idle_timeout", "executors.web.run_as.user", "executors.web.working_directory",
                "executors.web.commands[0]",
            ])
    }

    @Test func unreadableFilesAreReported() {
        do {
            _ = try ConfigLoader.load(path: "/nonexistent/runvoyd.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("/nonexistent/runvoyd.yaml"))
            #expect(error.description.contains("cannot read"))
        }
    }
}

struct AllowListTests {
    @Test func allowEnvTakesNamesAndPrefixes() throws {
        let config = try ConfigLoader.parse(
            yaml: ConfigLoaderTests.minimal(
                "    run_as: {user: nobody}\n    allow_env: [LANG, TF_VAR_*]\n    commands: any\n"),
            file: "t")
        let executor = config.defaultExecutor
        #expect(executor.allowsEnv("LANG"))
        #expect(executor.allowsEnv("TF_VAR_region"))
        #expect(!executor.allowsEnv("LANGUAGE"))
        #expect(!executor.allowsEnv("LD_PRELOAD"))
    }

    @Test func accessListsAdmitUsersGroupsAndEveryone() {
        #expect(AccessList(users: ["alice"]).admits(userName: "alice", groupNames: []))
        #expect(!AccessList(users: ["alice"]).admits(userName: "bob", groupNames: ["alice"]))
        #expect(AccessList(groups: ["ops"]).admits(userName: "bob", groupNames: ["bob", "ops"]))
        #expect(AccessList(users: ["*"]).admits(userName: "anyone", groupNames: []))
        #expect(!AccessList().admits(userName: "root", groupNames: ["root"]))
    }
}

struct DurationParserTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("30s", .seconds(30)), ("5m", .seconds(300)), ("1h", .seconds(3600)),
        ("1h30m", .seconds(5400)), ("2d", .seconds(172_800)), ("1.5s", .milliseconds(1500)), ("45", .seconds(45)),
    ])
    func parses(text: String, expected: Duration) {
        #expect(DurationParser.parse(text) == expected)
    }

    @Test(arguments: ["", "-5s", "5x", "s", "1h1h", "30m1h", "1e99", "abc", "5 m"])
    func rejects(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test(arguments: ["250ms", "30s", "1m30s", "2h", "1d1h1m1s"])
    func roundTrips(text: String) throws {
        let duration = try #require(DurationParser.parse(text))
        #expect(DurationParser.format(duration) == text)
    }
}

/// The `history` section.
extension ConfigLoaderTests {
    @Test func historyDefaultsAndSettings() throws {
        let defaults = try ConfigLoader.parse(
            yaml: Self.minimal("    run_as: {user: nobody}\n    commands: any\n"), file: "t")
        #expect(defaults.history.maxOutputBytes == 64 << 20)
        #expect(defaults.history.maxAge == .seconds(30 * 86400))
        #expect(defaults.history.maxTotalBytes == 10 << 30)
        #expect(defaults.history.pruneInterval == .seconds(600))

        let yaml = """
            history:
              max_output_bytes: 512KiB
              max_age: never
              max_total_bytes: unlimited
              prune_interval: 30s
            """ + "\n" + Self.minimal("    run_as: {user: nobody}\n    commands: any\n")
        let config = try ConfigLoader.parse(yaml: yaml, file: "t")
        #expect(config.history.maxOutputBytes == 512 << 10)
        #expect(config.history.maxAge == nil)
        #expect(config.history.maxTotalBytes == nil)
        #expect(config.history.pruneInterval == .seconds(30))

        let sized = try ConfigLoader.parse(
            yaml: "history:\n  max_output_bytes: 1048576\n  max_total_bytes: 2G\n  max_age: 2d\n"
                + Self.minimal("    run_as: {user: nobody}\n    commands: any\n"), file: "t")
        #expect(sized.history.maxOutputBytes == 1 << 20)
        #expect(sized.history.maxTotalBytes == 2 << 30)
        #expect(sized.history.maxAge == .seconds(2 * 86400))
    }

    @Test(arguments: [
        ("max_output_bytes: lots", "history.max_output_bytes", "expected a size"),
        ("max_output_bytes: 1KiB", "history.max_output_bytes", "is outside"),
        ("max_total_bytes: 12XB", "history.max_total_bytes", "expected a size"),
        ("max_age: 0s", "history.max_age", "must be positive"),
        ("max_age: forever", "history.max_age", "expected a duration"),
        ("prune_interval: 100ms", "history.prune_interval", "at least 1s"),
        ("max_outptu_bytes: 1MiB", "history.max_outptu_bytes", "did you mean 'max_output_bytes'"),
    ])
    func badHistorySettingsAreReportedWithTheirKey(line: String, key: String, message: String) {
        let yaml = "history:\n  \(line)\n" + Self.minimal("    run_as: {user: nobody}\n    commands: any\n")
        let found = Self.diagnostics(yaml)
        #expect(found.contains { $0.keyPath == key && $0.message.contains(message) && $0.line == 2 }, "\(found)")
    }
}

/// Roles, executor access by role, the rule syntax and expectations.
struct PolicyConfigTests {
    static let yaml = """
        admin_contact: ops@example.com
        roles:
          admin: {users: [root]}
          operator: {groups: [nogroup]}
          developer: {users: ["*"]}
        executors:
          deploy:
            default: true
            run_as: {user: nobody}
            allow: {users: [daemon], groups: [nogroup], roles: [operator]}
            commands:
              - {deny: [terraform, destroy, "*"]}
              - [terraform, [plan, apply], "*"]
              - [systemctl, restart, {regex: "^(nginx|api)$"}]
              - [cat, {path_under: /var/log/app}]
              - {allow: [git, pull]}
              - {deny: any}
        expect:
          - {user: nobody, executor: deploy, argv: [terraform, destroy], result: deny}
          - {user: daemon, argv: [git, pull], result: allow}
        """

    @Test func rolesRulesAndExpectationsParse() throws {
        let config = try ConfigLoader.parse(yaml: Self.yaml, file: "p.yaml")
        #expect(
            config.roles == [
                RoleBinding(role: .admin, users: ["root"], groups: [], line: 3),
                RoleBinding(role: .operator, users: [], groups: ["nogroup"], line: 4),
                RoleBinding(role: .developer, users: ["*"], groups: [], line: 5),
            ])
        let deploy = config.defaultExecutor
        #expect(deploy.access == AccessList(users: ["daemon"], groups: ["nogroup"], roles: [.operator]))
        let rules = deploy.commands.rules
        #expect(rules.map(\.effect) == [.deny, .allow, .allow, .allow, .allow, .deny])
        #expect(rules.map(\.line) == [12, 13, 14, 15, 16, 17])
        #expect(rules[0].display == "deny terraform destroy *")
        #expect(rules[1].elements == [.literal("terraform"), .oneOf(["plan", "apply"])])
        #expect(rules[1].display == "terraform {plan|apply} *")
        #expect(rules[2].elements.last == .regex("^(nginx|api)$"))
        #expect(rules[3].elements.last == .pathUnder("/var/log/app"))
        #expect(rules[5].isAny && rules[5].display == "deny any")
        #expect(
            config.expectations == [
                PolicyExpectation(
                    user: "nobody", executor: "deploy", argv: ["terraform", "destroy"], allow: false, line: 19),
                PolicyExpectation(user: "daemon", executor: nil, argv: ["git", "pull"], allow: true, line: 20),
            ])
    }

    @Test(arguments: [
        ("roles:\n  wizard: {users: [x]}\n", "roles", "unknown role 'wizard'"),
        ("roles:\n  admn: {users: [x]}\n", "roles", "did you mean 'admin'"),
        ("roles:\n  viewer: {users: [x], teams: [y]}\n", "roles.viewer.teams", "unknown key"),
        ("expect:\n  - {user: x, argv: [a], result: maybe}\n", "expect[0].result", "allow or deny"),
        ("expect:\n  - {user: x, executor: nope, argv: [a], result: allow}\n", "expect", "not defined"),
        ("expect:\n  - {executor: web, argv: [a], result: allow}\n", "expect[0].user", "required"),
    ])
    func badPolicySettingsAreReported(text: String, key: String, message: String) {
        let yaml = text + ConfigLoaderTests.minimal("    run_as: {user: nobody}\n    commands: any\n")
        let found = ConfigLoaderTests.diagnostics(yaml)
        #expect(found.contains { $0.keyPath == key && $0.message.contains(message) }, "\(found)")
    }

    @Test(arguments: [
        ("[[ls, \"*\", x]]", "only allowed as the last"),
        ("[[\"*\"]]", "name its command"),
        ("[{maybe: [ls]}]", "each rule is"),
        ("[[ls, {regex: \"(\"}]]", "not a valid regular expression"),
        ("[[ls, {path_under: relative}]]", "absolute directory"),
        ("[[ls, {glob: \"*.txt\"}]]", "an argument is a string"),
        ("[[ls, []]]", "non-empty list"),
    ])
    func badRulesAreReported(rule: String, message: String) {
        let yaml = ConfigLoaderTests.minimal("    run_as: {user: nobody}\n    commands: \(rule)\n")
        let found = ConfigLoaderTests.diagnostics(yaml)
        #expect(found.contains { $0.message.contains(message) }, "\(found)")
    }
}

/// The `secrets` section and secrets in executors.
struct SecretsConfigTests {
    @Test func secretsAndSecretReferencesParse() throws {
        let yaml = """
            secrets: {key_file: /etc/runvoy/key, runtime_directory: /run/x, min_length: 8, admin_read: true}
            roles: {developer: {users: ["*"]}}
            executors:
              aws:
                run_as: {user: nobody}
                environment:
                  PATH: /usr/bin
                  AWS_SECRET_ACCESS_KEY: {secret: aws-prod-key}
                secret_files:
                  GOOGLE_APPLICATION_CREDENTIALS: {secret: gcp.sa}
                commands: any
            """
        let config = try ConfigLoader.parse(yaml: yaml, file: "s.yaml")
        #expect(config.secrets.keyFile == "/etc/runvoy/key" && config.secrets.runtimeDirectory == "/run/x")
        #expect(config.secrets.minLength == 8 && config.secrets.adminRead)
        let aws = config.defaultExecutor
        #expect(aws.environment == ["PATH": "/usr/bin"])
        #expect(aws.secretEnvironment == ["AWS_SECRET_ACCESS_KEY": "aws-prod-key"])
        #expect(aws.secretFiles == ["GOOGLE_APPLICATION_CREDENTIALS": "gcp.sa"])
        #expect(aws.secretNames == ["aws-prod-key", "gcp.sa"])
        let defaults = try ConfigLoader.parse(
            yaml: ConfigLoaderTests.minimal("    run_as: {user: nobody}\n    commands: any\n"), file: "t")
        #expect(defaults.secrets == SecretsSettings())
        #expect(defaults.secrets.runtimeDirectory == "/run/runvoy/secrets" && defaults.secrets.minLength == 6)
    }

    @Test(arguments: [
        ("    environment: {K: {secret: \"bad name\"}}\n", "executors.web.environment.K.secret", "secret names"),
        ("    environment: {K: {secrt: x}}\n", "executors.web.environment.K.secrt", "unknown key"),
        (
            "    environment: {K: x}\n    secret_files: {K: {secret: y}}\n", "executors.web.secret_files.K",
            "already set"
        ),
        ("    secret_files: [x]\n", "executors.web.secret_files", "expected a mapping"),
    ])
    func badSecretReferencesAreReported(body: String, key: String, message: String) {
        let yaml = ConfigLoaderTests.minimal("    run_as: {user: nobody}\n" + body + "    commands: any\n")
        let found = ConfigLoaderTests.diagnostics(yaml)
        #expect(found.contains { $0.keyPath == key && $0.message.contains(message) }, "\(found)")
    }
}

/// `metrics`: off by default, each way configured on its own, and a listen address that is not `HOST:PORT` refused.
struct MetricsConfigTests {
    static let executor = "executors: {x: {run_as: {user: nobody}, commands: any}}\n"

    @Test func nothingIsExposedByDefault() throws {
        let config = try ConfigLoader.parse(yaml: Self.executor, file: "t.yaml")
        #expect(config.metrics == MetricsSettings())
        #expect(config.metrics.socket == nil && config.metrics.textfile == nil && config.metrics.listen == nil)
    }

    @Test func everyKeyIsRead() throws {
        let config = try ConfigLoader.parse(
            yaml: Self.executor + """
                metrics:
                  socket: /run/m.sock
                  socket_mode: "0640"
                  socket_group: root
                  textfile: /var/lib/node/runvoyd.prom
                  textfile_interval: 5s
                  listen: "[::1]:9464"
                  user_labels: true
                """, file: "t.yaml")
        #expect(config.metrics.socket == "/run/m.sock" && config.metrics.socketMode == 0o640)
        #expect(config.metrics.socketGroup == "root" && config.metrics.textfile == "/var/lib/node/runvoyd.prom")
        #expect(config.metrics.textfileInterval == .seconds(5) && config.metrics.listen == "[::1]:9464")
        #expect(config.metrics.userLabels)
    }

    @Test func aListenAddressMustBeHostAndPort() {
        let diagnostics = ConfigLoaderTests.diagnostics(Self.executor + "metrics: {listen: \"9464\"}\n")
        #expect(diagnostics.contains { $0.keyPath == "metrics.listen" && $0.message.contains("HOST:PORT") })
        let interval = ConfigLoaderTests.diagnostics(Self.executor + "metrics: {textfile_interval: 100ms}\n")
        #expect(interval.contains { $0.keyPath == "metrics.textfile_interval" })
    }
}
