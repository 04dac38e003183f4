import RunvoyConfig
import Testing

/// Rate limits in the configuration: `limits.request_rate`, `limits.exec_rate`, `limits.rates` by role and user,
/// and an executor's `exec_rate`; every bad value is reported at its own line and key path.
struct RateConfigTests {
    static let executor = "executors:\n  web:\n    run_as: {user: nobody}\n    commands: any\n"

    @Test(arguments: [
        ("600/1m", RateLimit.perPeriod(count: 600, period: .seconds(60))),
        ("10/s", .perPeriod(count: 10, period: .seconds(1))), ("1/1h30m", .perPeriod(count: 1, period: .seconds(5400))),
        (" 5 / 250ms ", .perPeriod(count: 5, period: .milliseconds(250))), ("unlimited", .unlimited),
    ])
    func ratesParse(text: String, expected: RateLimit) {
        #expect(RateLimit.parse(text) == expected)
    }

    @Test(arguments: ["", "600", "0/1m", "-1/1m", "1/0s", "1/", "/1m", "x/1m", "1/1m/2", "1/forever", "Unlimited"])
    func badRatesAreRefused(text: String) {
        #expect(RateLimit.parse(text) == nil)
    }

    @Test func defaultsLeaveNormalUseAlone() throws {
        let config = try ConfigLoader.parse(yaml: Self.executor, file: "r.yaml")
        #expect(config.limits.requestRate == .perPeriod(count: 6000, period: .seconds(60)))
        #expect(config.limits.execRate == .perPeriod(count: 600, period: .seconds(60)))
        #expect(config.limits.rateOverrides == RateOverrides())
        #expect(config.defaultExecutor.execRate == nil)
    }

    @Test func everyRateIsRead() throws {
        let yaml = """
            limits:
              request_rate: 100/1m
              exec_rate: unlimited
              rates:
                roles:
                  viewer: {request_rate: 10/1m}
                  admin: {exec_rate: 5/s}
                users:
                  nobody: {request_rate: unlimited, exec_rate: 3/1h}
            executors:
              web:
                run_as: {user: nobody}
                exec_rate: 2/10m
                commands: any
            """
        let config = try ConfigLoader.parse(yaml: yaml, file: "r.yaml")
        #expect(config.limits.requestRate == .perPeriod(count: 100, period: .seconds(60)))
        #expect(config.limits.execRate == .unlimited)
        #expect(
            config.limits.rateOverrides.roles[.viewer]
                == RateSettings(requestRate: .perPeriod(count: 10, period: .seconds(60))))
        #expect(
            config.limits.rateOverrides.roles[.admin]
                == RateSettings(execRate: .perPeriod(count: 5, period: .seconds(1))))
        #expect(
            config.limits.rateOverrides.users["nobody"]
                == RateSettings(requestRate: .unlimited, execRate: .perPeriod(count: 3, period: .seconds(3600))))
        #expect(config.defaultExecutor.execRate == .perPeriod(count: 2, period: .seconds(600)))
        #expect(config.warnings.isEmpty)
    }

    @Test func badValuesAreReportedWhereTheyStand() {
        let cases: [(String, String, Int, String)] = [
            ("limits:\n  request_rate: lots\n", "limits.request_rate", 2, "expected a rate N/PERIOD"),
            ("limits:\n  exec_rate: 0/1m\n", "limits.exec_rate", 2, "expected a rate N/PERIOD"),
            (
                "limits:\n  rates: {roles: {boss: {exec_rate: 1/s}}}\n", "limits.rates.roles.boss", 2,
                "unknown role 'boss'"
            ),
            (
                "limits:\n  rates:\n    roles:\n      viewer: {exec_rate: 1/0s}\n",
                "limits.rates.roles.viewer.exec_rate", 4, "expected a rate"
            ),
            (
                "limits:\n  rates:\n    users:\n      nobody: {exec_rat: 1/s}\n", "limits.rates.users.nobody.exec_rat",
                4, "did you mean 'exec_rate'"
            ),
            ("limits:\n  rates: {users: [nobody]}\n", "limits.rates.users", 2, "expected a mapping of names"),
        ]
        for (limits, path, line, message) in cases {
            let found = ConfigLoaderTests.diagnostics(limits + Self.executor).filter { $0.severity == .error }
            #expect(found.map(\.keyPath) == [path], "\(limits)")
            #expect(found.first?.line == line, "\(limits)")
            #expect(found.first?.message.contains(message) == true, "\(limits): \(found)")
        }
        let executor = ConfigLoaderTests.diagnostics(
            "executors:\n  web:\n    run_as: {user: nobody}\n    exec_rate: 2\n    commands: any\n")
        #expect(executor.map(\.keyPath) == ["executors.web.exec_rate"])
        #expect(executor.first?.line == 4)
    }

    @Test func anUnknownUserIsAWarning() throws {
        let config = try ConfigLoader.parse(
            yaml: "limits:\n  rates: {users: {ghost-user-xyz: {exec_rate: 1/s}}}\n" + Self.executor, file: "r.yaml")
        #expect(config.warnings.map(\.keyPath) == ["limits.rates.users.ghost-user-xyz"])
        #expect(
            config.limits.rateOverrides.users["ghost-user-xyz"]
                == RateSettings(execRate: .perPeriod(count: 1, period: .seconds(1))))
    }
}
