import RunvoyConfig
import RunvoyKit

extension Authorizer {
    /// The executor's environment with the variables the caller asked for; each must be one the executor accepts
    /// (`allow_env`), else the refusal names the first one that is not.
    static func environment(
        _ requested: [String: String]?, on executor: ExecutorConfig
    ) throws(RunvoyError) -> [String: String] {
        var environment = executor.environment
        for (key, value) in requested ?? [:] {
            guard executor.allowsEnv(key) else {
                throw RunvoyError(.permissionDenied, "executor '\(executor.name)' does not accept --env \(key)")
            }
            environment[key] = value
        }
        return environment
    }

    /// The longest duration a request may ask for, in milliseconds: what DurationParser reads (under 10^10 s).
    /// Beyond it, microsecond counts of the duration would overflow 64 bits.
    static let longestDurationMs: Int64 = 9_999_999_999_999

    /// The timeout a command gets: the caller's (positive, and within the executor's `max_timeout`), else the
    /// executor's default (nil: none).
    static func timeout(milliseconds requested: Int64?, on executor: ExecutorConfig) throws(RunvoyError) -> Duration? {
        guard let requested else { return executor.defaultTimeout }
        guard requested > 0 else { throw RunvoyError(.invalidArgument, "timeout must be positive") }
        guard requested <= Self.longestDurationMs else {
            throw RunvoyError(.invalidArgument, "timeout_ms must be below 10^13 (about 317 years), not \(requested)")
        }
        let duration = Duration.milliseconds(requested)
        if let maximum = executor.maxTimeout, duration > maximum {
            throw RunvoyError(
                .invalidArgument,
                "timeout \(DurationParser.format(duration)) exceeds executor '\(executor.name)' maximum of \(DurationParser.format(maximum))"
            )
        }
        return duration
    }
}
