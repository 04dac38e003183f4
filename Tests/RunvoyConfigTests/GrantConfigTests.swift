import RunvoyConfig
import RunvoyKit
import Testing

/// The `grants` section: what it sets, and each mistake reported where it stands (file:line and key path).
struct GrantConfigTests {
    static let executors = """
        executors:
          deploy: {run_as: {user: nobody}, commands: any}
        """

    func config(_ grants: String) throws -> DaemonConfig {
        try ConfigLoader.parse(yaml: "grants: \(grants)\n" + Self.executors, file: "test.yaml")
    }

    func errors(_ grants: String) -> [ConfigDiagnostic] {
        ConfigLoaderTests.diagnostics("grants: \(grants)\n" + Self.executors).filter { $0.severity == .error }
    }

    @Test func theSectionSetsWhatMayBeAskedForAndHowItIsApproved() throws {
        let defaults = try config("{}").grantSettings
        #expect(defaults.maxDuration == .seconds(86400) && defaults.requestableRoles.isEmpty)
        #expect(defaults.approval.count == 1 && defaults.approval.approvers.roles == [.admin])
        #expect(defaults.approval.reasonRequired && !defaults.mayRequest(.role(.operator)))
        let settings = try config(
            """
            {max_duration: 2h, requestable_roles: [operator, admin], requestable_executors: [deploy],
              approval: {count: 2, approvers: {groups: [sre]}, expires: 15m}}
            """
        ).grantSettings
        #expect(settings.maxDuration == .seconds(7200))
        #expect(settings.mayRequest(.role(.admin)) && settings.mayRequest(.executor("deploy")))
        #expect(!settings.mayRequest(.role(.viewer)) && !settings.mayRequest(.executor("other")))
        #expect(settings.approval.count == 2 && settings.approval.approvers.groups == ["sre"])
        #expect(try config("{requestable_executors: [\"*\"]}").grantSettings.mayRequest(.executor("any")))
    }

    @Test func mistakesAreReportedWhereTheyStand() {
        let role = errors("{requestable_roles: [operator, root]}")
        #expect(role.map(\.keyPath) == ["grants.requestable_roles[1]"] && role.first?.line == 1, "\(role)")
        let executor = errors("{requestable_executors: [nope]}")
        #expect(executor.map(\.keyPath) == ["grants.requestable_executors[0]"], "\(executor)")
        #expect(executor.first?.message.contains("no executor 'nope'") == true)
        let none = errors("{approval: {count: 0}}")
        #expect(none.map(\.keyPath) == ["grants.approval.count"], "\(none)")
        #expect(none.first?.message.contains("always needs approval") == true)
        let short = errors("{max_duration: 30s}")
        #expect(short.map(\.keyPath) == ["grants.max_duration"], "\(short)")
        let long = errors("{max_duration: 91d}")
        #expect(long.map(\.keyPath) == ["grants.max_duration"], "\(long)")
        let noApprovers = errors("{approval: {count: 1}}")
        #expect(noApprovers.map(\.keyPath) == ["grants.approval.approvers"], "\(noApprovers)")
    }

    /// REVIEW-grants G1: what happens to the running executions a grant admitted when it ends.
    @Test func endRunningIsKillByDefaultOrKeep() throws {
        #expect(try config("{}").grantSettings.endRunning == .kill)
        #expect(try config("{end_running: keep}").grantSettings.endRunning == .keep)
        #expect(try config("{end_running: kill}").grantSettings.endRunning == .kill)
        let wrong = errors("{end_running: stop}")
        #expect(wrong.map(\.keyPath) == ["grants.end_running"], "\(wrong)")
        #expect(wrong.first?.message.contains("kill or keep") == true)
    }
}
