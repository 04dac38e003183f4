import RunvoyConfig
import RunvoyKit

/// The size limits on a request's argv and environment (`limits.max_arguments` and its neighbours).
///
/// `exec` and `explain` check them before any policy work, so what the policy costs is bounded by them and not
/// only by the frame size. A refusal names the limit, its configured value and the size found, never the
/// arguments themselves. Sizes are counted as exec counts them: UTF-8 bytes, each string with its NUL.
enum RequestLimits {
    /// The refusal (`invalid_argument`) for the first limit that `argv` or `env` exceeds, or nil.
    static func refusal(argv: [String], env: [String: String]? = nil, _ limits: Limits) -> RunvoyError? {
        if argv.count > limits.maxArguments {
            return refuse("argv has \(argv.count) arguments", "max_arguments", limits.maxArguments)
        }
        var total = 0
        for (index, argument) in argv.enumerated() {
            let size = argument.utf8.count
            if size > limits.maxArgumentBytes {
                return refuse("argument \(index) is \(size) bytes", "max_argument_bytes", limits.maxArgumentBytes)
            }
            total += size + 1
        }
        if total > limits.maxArgvBytes {
            return refuse(
                "argv is \(total) bytes (each argument with its NUL)", "max_argv_bytes", limits.maxArgvBytes)
        }
        guard let env else { return nil }
        if env.count > limits.maxEnvEntries {
            return refuse("the environment has \(env.count) entries", "max_env_entries", limits.maxEnvEntries)
        }
        let envBytes = env.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 2 }
        if envBytes > limits.maxEnvBytes {
            return refuse(
                "the environment is \(envBytes) bytes (each entry as NAME=VALUE with its NUL)", "max_env_bytes",
                limits.maxEnvBytes)
        }
        return nil
    }

    private static func refuse(_ found: String, _ key: String, _ limit: Int) -> RunvoyError {
        RunvoyError(.invalidArgument, "\(found), over limits.\(key) (\(limit)); nothing was evaluated or run")
    }
}
