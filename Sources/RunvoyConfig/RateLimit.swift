import RunvoyKit

/// A token bucket's setting: `N/PERIOD` lets up to N through at once and refills N per period (one every
/// PERIOD/N), or `unlimited`.
public enum RateLimit: Sendable, Hashable, CustomStringConvertible {
    case unlimited
    case perPeriod(count: Int, period: Duration)

    /// `600/1m`, `2/s`, `unlimited`; nil for anything else.
    public static func parse(_ text: String) -> RateLimit? {
        if text == "unlimited" { return .unlimited }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let count = Int(trimmed(parts[0])), count >= 1 else { return nil }
        var periodText = trimmed(parts[1])
        // `10/s`, `5/m`: one of the unit.
        if periodText.first?.isLetter == true { periodText = "1" + periodText }
        guard let period = DurationParser.parse(periodText), period > .zero else { return nil }
        return .perPeriod(count: count, period: period)
    }

    public var description: String {
        switch self {
        case .unlimited: "unlimited"
        case .perPeriod(let count, let period): "\(count)/\(DurationParser.format(period))"
        }
    }
}

/// Rates for one role or one user (`limits.rates`): nil keeps the default of `limits`.
public struct RateSettings: Sendable, Equatable {
    public var requestRate: RateLimit?
    public var execRate: RateLimit?

    public init(requestRate: RateLimit? = nil, execRate: RateLimit? = nil) {
        self.requestRate = requestRate
        self.execRate = execRate
    }
}

/// `limits.rates`: rates of roles and users other than the defaults.
public struct RateOverrides: Sendable, Equatable {
    public var roles: [Role: RateSettings] = [:]
    public var users: [String: RateSettings] = [:]

    public init() {}
}

private func trimmed(_ text: Substring) -> String {
    String(String(text.drop { $0 == " " }.reversed().drop { $0 == " " }).reversed())
}
