import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// The size limits on argv and environment: which limit a request exceeds, and what the refusal says.
struct RequestLimitsTests {
    static var small: Limits {
        var limits = Limits()
        limits.maxArguments = 3
        limits.maxArgumentBytes = 10
        limits.maxArgvBytes = 20
        limits.maxEnvEntries = 2
        limits.maxEnvBytes = 16
        return limits
    }

    @Test func theDefaultsLetRealCommandsThrough() {
        let limits = Limits()
        #expect(limits.maxArguments == 4096)
        #expect(limits.maxArgumentBytes == 131_072)
        #expect(limits.maxArgvBytes == 1_048_576)
        #expect(limits.maxEnvEntries == 256)
        #expect(limits.maxEnvBytes == 262_144)
        let argv = ["terraform", "apply", "-auto-approve"] + (0..<1000).map { "-var=key\($0)=value\($0)" }
        #expect(RequestLimits.refusal(argv: argv, env: ["TF_VAR_region": "eu-west-1"], limits) == nil)
    }

    @Test func eachLimitIsCheckedAndNamedWithItsValueAndTheSizeFound() {
        func refusal(_ argv: [String], _ env: [String: String]? = nil) -> RunvoyError? {
            RequestLimits.refusal(argv: argv, env: env, Self.small)
        }
        #expect(refusal(["a", "b", "c"], ["A": "1", "B": "2"]) == nil)
        let cases: [([String], [String: String]?, String, String)] = [
            (["a", "b", "c", "d"], nil, "limits.max_arguments (3)", "4 arguments"),
            (["a", "secret-0123"], nil, "limits.max_argument_bytes (10)", "argument 1 is 11 bytes"),
            // Each argument counts with its NUL: 3 x (6 + 1) = 21.
            (["aaaaaa", "bbbbbb", "cccccc"], nil, "limits.max_argv_bytes (20)", "21 bytes"),
            (["a"], ["A": "1", "B": "2", "C": "3"], "limits.max_env_entries (2)", "3 entries"),
            // NAME=VALUE and a NUL: 1 + 1 + 14 + 1 = 17.
            (["a"], ["A": "secret-xyz-123"], "limits.max_env_bytes (16)", "17 bytes"),
        ]
        for (argv, env, limit, size) in cases {
            let error = refusal(argv, env)
            #expect(error?.code == .invalidArgument, "\(limit)")
            #expect(error?.message.contains(limit) == true, "\(error?.message ?? "no refusal")")
            #expect(error?.message.contains(size) == true, "\(error?.message ?? "no refusal")")
            #expect(error?.message.contains("secret") == false, "the refusal echoes the request")
        }
        // Bytes, not characters.
        #expect(refusal(["ééééé"]) == nil)
        #expect(refusal(["éééééé"])?.message.contains("12 bytes") == true)
    }

    @Test func configuredLimitsAreParsedWithUnits() throws {
        let config = try ConfigLoader.parse(
            yaml: """
                limits:
                  max_arguments: 100
                  max_argument_bytes: 4KiB
                  max_argv_bytes: 65536
                  max_env_entries: 0
                  max_env_bytes: 1MiB
                executors:
                  web: {run_as: {user: nobody}, commands: any}
                """, file: "limits.yaml")
        #expect(config.limits.maxArguments == 100)
        #expect(config.limits.maxArgumentBytes == 4096)
        #expect(config.limits.maxArgvBytes == 65536)
        #expect(config.limits.maxEnvEntries == 0)
        #expect(config.limits.maxEnvBytes == 1 << 20)
    }

    @Test func badLimitValuesAreClearConfigErrors() {
        let yaml = """
            limits:
              max_arguments: 0
              max_argument_bytes: lots
              max_argv_bytes: 65GiB
              max_env_entries: -1
              max_env_bytes: 1.5MiB
            executors:
              web: {run_as: {user: nobody}, commands: any}
            """
        do {
            _ = try ConfigLoader.parse(yaml: yaml, file: "limits.yaml")
            Issue.record("expected errors")
        } catch {
            let found = Dictionary(uniqueKeysWithValues: error.diagnostics.map { ($0.keyPath, $0) })
            #expect(
                Set(found.keys) == [
                    "limits.max_arguments", "limits.max_argument_bytes", "limits.max_argv_bytes",
                    "limits.max_env_entries", "limits.max_env_bytes",
                ])
            #expect(found["limits.max_arguments"]?.message.contains("outside 1...1000000") == true)
            #expect(found["limits.max_argument_bytes"]?.message.contains("expected a size") == true)
            #expect(found["limits.max_argv_bytes"]?.message.contains("outside") == true)
            #expect(found["limits.max_argv_bytes"]?.line == 4)
            #expect(found["limits.max_env_entries"]?.message.contains("outside 0...100000") == true)
        }
    }
}
