import RunvoyConfig
import Testing

/// `approval`, `break_glass` and `approvals`: every key reaches the model, a rule's own approval is the exception
/// to its executor's, and what is wrong is reported at its own line and key path.
struct ApprovalConfigTests {
    static let prod = """
        approvals: {max_pending: 50, max_pending_per_user: 3, max_expires: 2h}
        executors:
          prod:
            run_as: {user: nobody}
            approval:
              count: 2
              approvers: {roles: [admin], groups: [root], users: [bob]}
              expires: 15m
              reason: required
            break_glass: {roles: [admin], users: [carol]}
            commands:
              - {allow: [systemctl, status, "*"], approval: {count: 0}}
              - {allow: [systemctl, restart, "*"], approval: {count: 1, approvers: {groups: [root]}}}
              - [/srv/bin/rotate.sh]
        """

    @Test func everyKeyReachesTheModel() throws {
        let config = try ConfigLoader.parse(yaml: Self.prod, file: "a.yaml")
        #expect(config.approvals.maxPending == 50)
        #expect(config.approvals.maxPendingPerUser == 3)
        #expect(config.approvals.maxExpires == .seconds(7200))
        let executor = try #require(config.executor(named: "prod"))
        let policy = try #require(executor.approval)
        #expect(policy.count == 2)
        #expect(policy.approvers == AccessList(users: ["bob"], groups: ["root"], roles: [.admin]))
        #expect(policy.expires == .seconds(900))
        #expect(policy.reasonRequired)
        #expect(policy.line == 6)
        #expect(executor.breakGlass == AccessList(users: ["carol"], roles: [.admin]))
        let rules = executor.commands.rules
        #expect(rules.map { $0.approval?.count } == [0, 1, nil])
        #expect(rules[1].approval?.approvers == AccessList(groups: ["root"]))
        #expect(rules[1].approval?.expires == ApprovalPolicy.defaultExpires)
        #expect(rules[1].approval?.reasonRequired == false)
        #expect(
            policy.display
                == "needs 2 approvals (roles admin; groups root; users bob), expires 15m, a reason is required")
    }

    @Test func defaultsAreNoApprovalAndTheDocumentedBounds() throws {
        let config = try ConfigLoader.parse(
            yaml: "executors: {x: {run_as: {user: nobody}, commands: any}}", file: "a.yaml")
        #expect(config.defaultExecutor.approval == nil)
        #expect(config.defaultExecutor.breakGlass == nil)
        #expect(config.approvals == ApprovalSettings())
        #expect(config.approvals.maxPending == 1000)
        #expect(config.approvals.maxPendingPerUser == 10)
        #expect(config.approvals.maxExpires == .seconds(7 * 86400))
        let none = try ConfigLoader.parse(
            yaml: "executors: {x: {run_as: {user: nobody}, commands: any, approval: {count: 0}}}", file: "a.yaml")
        #expect(none.defaultExecutor.approval == nil)
    }

    static func errors(_ yaml: String) -> [String] {
        ConfigLoaderTests.diagnostics(yaml).filter { $0.severity == .error }.map {
            "\($0.keyPath):\($0.line): \($0.message)"
        }
    }

    @Test func mistakesAreReportedWhereTheyStand() {
        let cases: [(String, String)] = [
            (
                "executors:\n  x:\n    run_as: {user: nobody}\n    commands:\n      - {deny: [rm], approval: {count: 1}}\n",
                "executors.x.commands[0].approval:5: only an allow rule takes an approval"
            ),
            (
                "executors:\n  x:\n    run_as: {user: nobody}\n    commands: any\n    approval: {count: 2}\n",
                "executors.x.approval.approvers:5: required when count is above 0: {users, groups, roles}"
            ),
            (
                "executors:\n  x:\n    run_as: {user: nobody}\n    commands: any\n    approval:\n      count: 17\n      approvers: {roles: [admin]}\n",
                "executors.x.approval.count:6: 17 is outside 0...16"
            ),
            (
                "executors:\n  x:\n    run_as: {user: nobody}\n    commands: any\n    approval:\n      approvers: {roles: [admin]}\n      reason: maybe\n",
                "executors.x.approval.reason:7: must be required or optional"
            ),
            (
                "executors:\n  x:\n    run_as: {user: nobody}\n    commands: any\n    approval:\n      approvers: {roles: [boss]}\n",
                "executors.x.approval.approvers.roles[0]:6: unknown role 'boss'; roles are admin, operator, developer, viewer"
            ),
            (
                "executors:\n  x:\n    run_as: {user: nobody}\n    commands: any\n    approval:\n      approvers: {roles: [admin]}\n      expires: 0s\n",
                "executors.x.approval.expires:7: must be at least 1s"
            ),
            (
                "executors:\n  x:\n    run_as: {user: nobody}\n    commands:\n      - {allow: [ls], deny: [rm]}\n",
                "executors.x.commands[0]:5: each rule is `any`, a list of arguments such as [systemctl, restart, nginx], or {allow: RULE} / {deny: RULE}"
            ),
            (
                "executors:\n  x:\n    run_as: {user: nobody}\n    commands:\n      - {approval: {count: 0}}\n",
                "executors.x.commands[0]:5: each rule is `any`, a list of arguments such as [systemctl, restart, nginx], or {allow: RULE} / {deny: RULE}"
            ),
        ]
        for (yaml, expected) in cases {
            #expect(Self.errors(yaml) == [expected], "\(yaml)")
        }
    }

    @Test func warningsNameWhatCanNeverWork() throws {
        let unreachable = try ConfigLoader.parse(
            yaml: """
                executors:
                  x:
                    default: true
                    run_as: {user: nobody}
                    commands: any
                    approval: {count: 3, approvers: {users: [root, nobody]}, expires: 30d}
                  y:
                    run_as: {user: nobody}
                    commands: any
                    break_glass: {roles: [admin]}
                  z:
                    run_as: {user: nobody}
                    commands: any
                    approval: {approvers: {}}
                """, file: "w.yaml")
        let warnings = unreachable.warnings.map { "\($0.keyPath):\($0.line): \($0.message)" }
        #expect(
            warnings.contains(
                "executors.x.approval.approvers:6: count 3 is more than the 2 users named: every request will expire"))
        #expect(
            warnings.contains(
                "executors.y.break_glass:7: no command of this executor needs approval, so there is no glass to break"))
        #expect(warnings.contains("executors.z.approval.approvers:14: no one may approve: every request will expire"))
        #expect(
            warnings.contains(
                "executors.x.approval.expires:6: 30d is longer than approvals.max_expires (7d), which bounds it"))
    }
}

extension ApprovalConfigTests {
    /// `editable` on an executor some of whose commands need approval: every edit there is refused (review of
    /// approvals, F6), which check-config says.
    @Test func editableOnAnExecutorThatNeedsApprovalIsWarnedOf() throws {
        let config = try ConfigLoader.parse(
            yaml: """
                executors:
                  x:
                    default: true
                    run_as: {user: nobody}
                    editable: [/etc/x]
                    commands:
                      - {allow: [true], approval: {count: 1, approvers: {users: [root]}}}
                """, file: "e.yaml")
        #expect(config.executors.first?.needsApproval == true)
        let warnings = config.warnings.map { "\($0.keyPath):\($0.line): \($0.message)" }
        #expect(
            warnings.contains(
                "executors.x.editable:2: commands of this executor need approval, and edits are not sent for approval: runvoyd refuses every edit on it"
            ), "\(warnings)")
    }
}
