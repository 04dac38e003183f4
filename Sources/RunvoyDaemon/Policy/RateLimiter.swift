import RunvoyConfig
import RunvoyKit

/// The daemon's rate limits (`limits.request_rate`, `limits.exec_rate`, `limits.rates`, executors' `exec_rate`):
/// which bucket applies to whom, and the `rate_limited` refusal. The request bucket is taken by `Router` before
/// a request is handled; the execution buckets by `ExecutionManager`'s admission, given back when the execution
/// is refused for another reason.
final class RateLimiter: Sendable {
    private let buckets = Mutex(RateBuckets())

    /// Methods that never take from the request bucket: greetings, and what goes to the execution attached to
    /// the connection (its input, signals and window size; a `signal` or `resize` by id is metered: `Router`).
    static let unmetered: Set<String> = [
        Method.hello.rawValue, "ping", Method.whoami.rawValue, Method.stdin.rawValue, Method.signal.rawValue,
        Method.resize.rawValue,
    ]

    /// How many buckets are held (bounded; see `RateBuckets`).
    var bucketCount: Int { buckets.withLock { $0.count } }

    /// Takes from `caller`'s request bucket for `method`; the refusal when it is empty.
    func takeRequest(_ method: String, caller: Caller, config: DaemonConfig) -> RunvoyError? {
        guard !Self.unmetered.contains(method) else { return nil }
        return takeFrame(caller: caller, config: config)
    }

    /// Takes from `caller`'s request bucket for a frame, whatever it is (`Router` decides which go free); the
    /// refusal when it is empty.
    func takeFrame(caller: Caller, config: DaemonConfig) -> RunvoyError? {
        let roles = Authorizer.roles(caller, config)
        guard
            let (rate, setting) = Self.rate(
                \.requestRate, default: config.limits.requestRate, "limits.request_rate", caller, roles, config),
            case .perPeriod(let count, let period) = rate
        else { return nil }
        let claim = RateBuckets.Claim(key: .requests(caller.accountKey), count: count, period: period)
        guard let wait = buckets.withLock({ $0.take([claim], now: .now) }) else { return nil }
        return Self.limited("requests", caller, rate, setting, wait)
    }

    /// Takes from `caller`'s execution bucket and its bucket on `executor` (none without one: a playbook run's
    /// hold of its locks), both or neither: the keys taken (to give back with `refund`), or the refusal.
    func takeExecution(
        caller: Caller, executor: ExecutorConfig?, config: DaemonConfig
    ) -> Result<
        [RateBuckets.Key], RunvoyError
    > {
        let roles = Authorizer.roles(caller, config)
        var claims: [(RateBuckets.Claim, RateLimit, String)] = []
        if let (rate, setting) = Self.rate(
            \.execRate, default: config.limits.execRate, "limits.exec_rate", caller, roles, config),
            case .perPeriod(let count, let period) = rate
        {
            claims.append(
                (RateBuckets.Claim(key: .executions(caller.accountKey), count: count, period: period), rate, setting))
        }
        if let executor, let rate = executor.execRate, case .perPeriod(let count, let period) = rate {
            claims.append(
                (
                    RateBuckets.Claim(key: .executor(caller.accountKey, executor.name), count: count, period: period),
                    rate,
                    "executors.\(executor.name).exec_rate"
                ))
        }
        guard !claims.isEmpty else { return .success([]) }
        let now = ContinuousClock.now
        return buckets.withLock { buckets in
            guard let wait = buckets.take(claims.map(\.0), now: now) else { return .success(claims.map(\.0.key)) }
            // Name the limit that holds longest.
            let (_, rate, setting) =
                claims.max { a, b in
                    buckets.tokens(a.0.key, count: a.0.count, period: a.0.period, now: now)
                        > buckets.tokens(b.0.key, count: b.0.count, period: b.0.period, now: now)
                } ?? claims[0]
            let what = setting.hasPrefix("executors.") ? "executions on '\(executor?.name ?? "")'" : "executions"
            return .failure(Self.limited(what, caller, rate, setting, wait))
        }
    }

    func refund(_ keys: [RateBuckets.Key]) {
        guard !keys.isEmpty else { return }
        buckets.withLock { $0.refund(keys) }
    }

    /// The rate that holds `caller` for `kind`, and where it is set: its own entry in `limits.rates.users`, else
    /// that of its most powerful role in `limits.rates.roles`, else the default, which does not hold
    /// administrators. Nil when nothing holds it.
    static func rate(
        _ kind: KeyPath<RateSettings, RateLimit?>, default value: RateLimit, _ name: String, _ caller: Caller,
        _ roles: Set<Role>, _ config: DaemonConfig
    ) -> (RateLimit, String)? {
        let overrides = config.limits.rateOverrides
        let key = name.split(separator: ".").last.map(String.init) ?? name
        if let user = caller.userName, let own = overrides.users[user]?[keyPath: kind] {
            return own == .unlimited ? nil : (own, "limits.rates.users.\(user).\(key)")
        }
        for role in Role.allCases where roles.contains(role) {
            if let rate = overrides.roles[role]?[keyPath: kind] {
                return rate == .unlimited ? nil : (rate, "limits.rates.roles.\(role.rawValue).\(key)")
            }
        }
        return roles.contains(.admin) || value == .unlimited ? nil : (value, name)
    }

    static func limited(
        _ what: String, _ caller: Caller, _ rate: RateLimit, _ setting: String, _ wait: Duration
    ) -> RunvoyError {
        let ms =
            wait.components.seconds * 1000 + (wait.components.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        var per = "\(rate)"
        if case .perPeriod(let count, let period) = rate { per = "\(count) per \(DurationParser.format(period))" }
        return RunvoyError(
            .rateLimited, "too many \(what) from \(caller.displayName): at most \(per) (\(setting))",
            data: RunvoyError.Details(retryAfterMs: max(1, ms)))
    }

    /// The `rate_limited` record of a refusal (`RefusalThrottle.recordRateLimited` coalesces them).
    static func record(_ error: RunvoyError, caller: Caller, method: String, executor: String? = nil) -> AuditEvent {
        var fields: [(String, String)] = [
            ("METHOD", method), ("CALLER_UID", String(caller.uid)), ("CALLER_USER", caller.displayName),
            ("CALLER_PID", String(caller.pid)),
        ]
        if let executor { fields.append(("EXECUTOR", executor)) }
        fields.append(("RETRY_AFTER_MS", String(error.data?.retryAfterMs ?? 0)))
        fields.append(("REASON", error.description))
        return AuditEvent(
            .rateLimited, priority: 4,
            message: "rate-limited \(caller.displayName) (uid \(caller.uid)) \(method): \(error.message)",
            fields: fields)
    }
}
