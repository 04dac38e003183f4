import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// `ExecPlan.make`: every refusal of an `exec` before anything exists, its wire error and the audit fields known by
/// then, and what an allowed plan holds. No daemon, no process; it looks up users and commands as runvoyd does, so
/// it runs as root (the run-as user `nobody` is looked up as itself).
struct ExecPlanTests {
    static let yaml = """
        roles:
          developer: {users: ["*"]}
        executors:
          x:
            default: true
            run_as: {user: root}
            environment: {PATH: /usr/bin:/bin}
            allow_env: [TERM]
            timeout: 1m
            max_timeout: 1h
            allow: {users: ["*"]}
            commands:
              - {deny: [echo, secret, "*"]}
              - [echo, "*"]
          any:
            run_as: {user: root}
            environment: {PATH: /usr/bin:/bin}
            allow: {users: ["*"]}
            commands: any
        """

    static func config() throws -> DaemonConfig {
        var config = try ConfigLoader.parse(yaml: yaml, file: "plan.yaml")
        config.sourcePath = "plan.yaml"
        return config
    }

    static let alice = Caller(
        uid: 4242, gid: 4242, pid: 99, userName: "alice", groupName: nil, groupNames: [], hasPidfd: false)

    func plan(
        _ params: ExecParams, caller: Caller = ExecPlanTests.alice, config: DaemonConfig? = nil
    ) throws -> Result<ExecPlan, ExecRefusal> {
        let config = try config ?? Self.config()
        return Result { () throws(ExecRefusal) in
            try ExecPlan.make(params, requestID: .number(1), caller: caller, config: config)
        }
    }

    func refusal(
        _ params: ExecParams, caller: Caller = ExecPlanTests.alice, config: DaemonConfig? = nil
    ) throws -> ExecRefusal {
        switch try plan(params, caller: caller, config: config) {
        case .success(let plan): throw PlanWasMade(command: plan.command)
        case .failure(let refusal): return refusal
        }
    }

    struct PlanWasMade: Error { var command: String }

    func names(_ fields: [(String, String)]) -> [String] { fields.map(\.0) }

    @Test func theRequestItselfIsCheckedFirst() throws {
        let limits = try Self.config().limits
        let tooMany = try refusal(ExecParams(argv: Array(repeating: "echo", count: limits.maxArguments + 1)))
        #expect(tooMany.error.code == .invalidArgument)
        #expect(
            tooMany.error.message
                == "argv has \(limits.maxArguments + 1) arguments, over limits.max_arguments (\(limits.maxArguments)); nothing was evaluated or run"
        )
        for argv in [[], [""]] {
            let empty = try refusal(ExecParams(argv: argv))
            #expect(empty.error == RunvoyError(.badRequest, "argv must name a command"))
        }
        let nul = try refusal(ExecParams(argv: ["echo", "a\u{0}b"]))
        #expect(nul.error == RunvoyError(.badRequest, "an argument contains a NUL byte"))
        for env in [["1X": "v"], ["A-B": "v"], ["TERM": "a\u{0}"]] {
            let bad = try refusal(ExecParams(argv: ["echo"], env: env))
            #expect(
                bad.error
                    == RunvoyError(
                        .badRequest,
                        "environment names are letters, digits and '_' (not first), and values have no NUL"))
        }
        // Nothing was decided yet: no rule in the record.
        #expect(
            names(nul.fields) == [
                "REQUEST_ID", "CALLER_UID", "CALLER_GID", "CALLER_USER", "CALLER_PID", "EXECUTOR", "ARGV",
            ])
    }

    @Test func anUnknownExecutor() throws {
        let refused = try refusal(ExecParams(argv: ["echo"], executor: "nope"))
        #expect(refused.error == RunvoyError(.noSuchExecutor, "no executor named 'nope'"))
        #expect(refused.executorName == "nope")
    }

    @Test func theDecisionRefusesWithItsRule() throws {
        let nobody = Caller(
            uid: 4243, gid: 4243, pid: 1, userName: nil, groupName: nil, groupNames: [], hasPidfd: false)
        let noRole = try refusal(ExecParams(argv: ["echo", "hi"]), caller: nobody)
        #expect(noRole.error == RunvoyError(.permissionDenied, "user #4243 has no runvoy role"))
        #expect(!names(noRole.fields).contains("RULE"))

        let denied = try refusal(ExecParams(argv: ["echo", "secret", "x"]))
        #expect(denied.error.code == .commandNotAllowed)
        #expect(denied.error.message.hasPrefix("denied by the rule `"))
        #expect(denied.fields.first { $0.0 == "RULE" }?.1 == "plan.yaml:13")

        let unmatched = try refusal(ExecParams(argv: ["ls"]))
        #expect(unmatched.error.code == .commandNotAllowed)
        #expect(!names(unmatched.fields).contains("RULE"))
    }

    @Test func environmentAndTimeoutAreTheExecutorsToAccept() throws {
        let env = try refusal(ExecParams(argv: ["echo"], env: ["FOO": "1"]))
        #expect(env.error == RunvoyError(.permissionDenied, "executor 'x' does not accept --env FOO"))
        #expect(env.fields.first { $0.0 == "RULE" }?.1 == "plan.yaml:14")
        #expect(env.fields.first { $0.0 == "ENV_KEYS" }?.1 == "FOO")

        let zero = try refusal(ExecParams(argv: ["echo"], timeoutMs: 0))
        #expect(zero.error == RunvoyError(.invalidArgument, "timeout must be positive"))
        let long = try refusal(ExecParams(argv: ["echo"], timeoutMs: 2 * 3_600_000))
        #expect(long.error == RunvoyError(.invalidArgument, "timeout 2h exceeds executor 'x' maximum of 1h"))
    }

    @Test func aCommandThatIsNotThereOrCannotBeExecuted() throws {
        let missing = try refusal(ExecParams(argv: ["runvoy-no-such-command"], executor: "any"))
        #expect(
            missing.error
                == RunvoyError(
                    .spawnFailed, "command not found on executor 'any': runvoy-no-such-command", reason: "not_found"))

        var template = Array("/tmp/runvoy-plan-XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { FileSystem.removeTree(directory) }
        let file = directory + "/data"
        #expect(
            FileManager.default.createFile(
                atPath: file, contents: Data("x".utf8), attributes: [.posixPermissions: 0o644]))
        let plain = try refusal(ExecParams(argv: [file], executor: "any"))
        #expect(
            plain.error
                == RunvoyError(
                    .spawnFailed, "not an executable file on executor 'any': \(file)", reason: "not_executable"))
    }

    /// A command the run-as user cannot reach (behind a folder only root may enter) is not found, whatever rule
    /// names it: nothing runs, and the refusal is the one runvoyd has always given, since the rules judge what a
    /// search as the daemon finds when the run-as user finds nothing.
    @Test func aCommandTheRunAsUserCannotReachIsNotFound() throws {
        var template = Array("/tmp/runvoy-plan-XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { FileSystem.removeTree(directory) }
        let tool = directory + "/tool"
        #expect(
            FileManager.default.createFile(
                atPath: tool, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755]))
        var config = try ConfigLoader.parse(
            yaml: """
                roles:
                  developer: {users: ["*"]}
                executors:
                  x:
                    default: true
                    run_as: {user: nobody}
                    environment: {PATH: \(directory)}
                    allow: {users: ["*"]}
                    commands:
                      - [\(tool)]
                """, file: "p.yaml")
        config.sourcePath = "p.yaml"
        let refused = try refusal(ExecParams(argv: ["tool"]), config: config)
        #expect(
            refused.error
                == RunvoyError(.spawnFailed, "command not found on executor 'x': tool", reason: "not_found"))
        #expect(refused.fields.first { $0.0 == "RULE" }?.1 == "p.yaml:10")
    }

    @Test func aRunAsIdentityThatDoesNotExist() throws {
        var config = try Self.config()
        let index = try #require(config.executors.firstIndex { $0.name == "any" })
        config.executors[index].runAs = RunAs(user: "runvoy-no-such-user", group: nil)
        let user = try refusal(ExecParams(argv: ["true"], executor: "any"), config: config)
        #expect(
            user.error
                == RunvoyError(
                    .spawnFailed, "executor 'any' runs as user 'runvoy-no-such-user', who does not exist",
                    reason: "identity"))
        config.executors[index].runAs = RunAs(user: "root", group: "runvoy-no-such-group")
        let group = try refusal(ExecParams(argv: ["true"], executor: "any"), config: config)
        #expect(
            group.error
                == RunvoyError(
                    .spawnFailed, "executor 'any' runs as group 'runvoy-no-such-group', which does not exist",
                    reason: "identity"))
    }

    @Test func anAllowedPlanHoldsWhatRunsAndWhy() throws {
        let params = ExecParams(argv: ["echo", "hi"], env: ["TERM": "dumb"], killOnDisconnect: true, stdin: true)
        let allowed = try plan(params).get()
        // The command the rules were checked against is the one that runs.
        let found = ResolvedCommand("echo", searchPath: "/usr/bin:/bin", workingDirectory: "/")
        #expect(allowed.command == found.identity)
        #expect(allowed.runAs == "root:root" && allowed.identity?.uid == 0)
        #expect(allowed.environment == ["PATH": "/usr/bin:/bin", "TERM": "dumb"])
        #expect(allowed.envKeys == ["TERM"])
        #expect(allowed.timeout == .seconds(60))
        #expect(allowed.wantsStdin && allowed.killOnDisconnect)
        #expect(allowed.decision.allowed && allowed.decision.rule == "plan.yaml:14")
        #expect(
            names(allowed.auditFields) == [
                "REQUEST_ID", "CALLER_UID", "CALLER_GID", "CALLER_USER", "CALLER_PID", "EXECUTOR", "ARGV", "ENV_KEYS",
                "RULE",
            ])
        #expect(
            names(allowed.startedFields(executionID: "e")) == [
                "EXECUTION_ID", "REQUEST_ID", "CALLER_UID", "CALLER_GID", "CALLER_USER", "CALLER_PID", "EXECUTOR",
                "ARGV", "ENV_KEYS", "RULE", "RUN_AS", "COMMAND_PATH", "CWD", "TIMEOUT_USEC",
            ])
        #expect(allowed.startedFields(executionID: "e").last?.1 == "60000000")

        let detached = try plan(ExecParams(argv: ["echo"], timeoutMs: 1500, detach: true, stdin: true)).get()
        #expect(!detached.wantsStdin && detached.timeout == .milliseconds(1500))
    }

    @Test func theRulesAreCheckedAgainstTheCommandGivenNotASecondSearch() throws {
        let config = try ConfigLoader.parse(
            yaml: """
                roles:
                  developer: {users: ["*"]}
                executors:
                  x:
                    default: true
                    run_as: {user: root}
                    allow: {users: ["*"]}
                    commands:
                      - [{path_under: /opt/runvoy-tools}]
                """, file: "p.yaml")
        // Nothing is at that path: only the resolution handed in can make the rule match.
        let command = ResolvedCommand(
            typed: "tool", outcome: .found("/opt/runvoy-tools/tool"), identity: "/opt/runvoy-tools/tool")
        let allowed = Authorizer.decide(
            caller: Self.alice, executor: config.defaultExecutor, argv: ["tool"], command: command, config: config)
        #expect(allowed.allowed)
        let searched = Authorizer.decide(
            caller: Self.alice, executor: config.defaultExecutor, argv: ["tool"], config: config)
        #expect(!searched.allowed)
    }

    @Test func aDenialRecordBoundsWhatTheCallerChose() throws {
        let nobody = Caller(
            uid: 4243, gid: 4243, pid: 1, userName: nil, groupName: nil, groupNames: [], hasPidfd: false)
        let long = String(repeating: "a", count: 2048)
        let refused = try refusal(ExecParams(argv: ["echo", long], env: ["TERM": "x"]), caller: nobody)
        let record = refused.record(caller: nobody, hasRole: false)
        #expect(record.kind == .decision && record.priority == 4)
        #expect(record.message == "denied #4243 (uid 4243) exec on 'x': user #4243 has no runvoy role")
        #expect(
            names(record.fields) == [
                "REQUEST_ID", "CALLER_UID", "CALLER_GID", "CALLER_USER", "CALLER_PID", "EXECUTOR", "ARGV",
                "ARGV_TRUNCATED", "ARGV_BYTES", "ARGV_COUNT", "ARGV_SHA256", "ENV_KEYS", "DECISION", "REASON",
            ])
        #expect(record.fields.last?.1 == "permission_denied: user #4243 has no runvoy role")
    }
}
