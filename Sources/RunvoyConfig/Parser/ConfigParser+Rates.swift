import Yams

/// Rate limits: `limits.request_rate`, `limits.exec_rate`, `limits.rates` (by role and by user) and an
/// executor's `exec_rate`, each `N/PERIOD` or `unlimited`.
extension ConfigParser {
    func parseRates(_ entries: ConfigEntries, into limits: inout Limits) {
        typealias Keys = ConfigSchema.LimitsKeys
        if let value = rate(Keys.requestRate, in: entries) { limits.requestRate = value }
        if let value = rate(Keys.execRate, in: entries) { limits.execRate = value }
        guard let rates = fields(Keys.rates, in: entries) else { return }
        for (name, keyNode, settings) in namedRates(ConfigSchema.RatesKeys.roles, in: rates) {
            guard let role = Role(rawValue: name) else {
                error(
                    keyNode, rates.path(ConfigSchema.RatesKeys.roles) + ".\(name)",
                    "unknown role '\(name)'; the roles are \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
                continue
            }
            limits.rateOverrides.roles[role] = settings
        }
        for (name, keyNode, settings) in namedRates(ConfigSchema.RatesKeys.users, in: rates) {
            if !SystemAccounts.userExists(name) {
                warning(keyNode, rates.path(ConfigSchema.RatesKeys.users) + ".\(name)", "unknown user \"\(name)\"")
            }
            limits.rateOverrides.users[name] = settings
        }
    }

    /// The entries of a mapping of names to `{request_rate, exec_rate}`.
    private func namedRates(_ key: ConfigKey, in entries: ConfigEntries) -> [(String, Node, RateSettings)] {
        guard let node = entries[key] else { return [] }
        guard let mapping = node.mapping else {
            error(
                node, entries.path(key), "expected a mapping of names to {request_rate: N/PERIOD, exec_rate: N/PERIOD}")
            return []
        }
        typealias Keys = ConfigSchema.RateKeys
        var out: [(String, Node, RateSettings)] = []
        for (keyNode, value) in mapping {
            guard let name = keyNode.scalar?.string else {
                error(keyNode, entries.path(key), "names must be strings")
                continue
            }
            guard let fields = fields(value, entries.path(key) + ".\(name)", Keys.section) else { continue }
            out.append(
                (
                    name, keyNode,
                    RateSettings(
                        requestRate: rate(Keys.requestRate, in: fields), execRate: rate(Keys.execRate, in: fields))
                ))
        }
        return out
    }

    /// A rate, `N/PERIOD` or `unlimited`.
    func rate(_ key: ConfigKey, in entries: ConfigEntries) -> RateLimit? {
        guard case .rate = key.type else { preconditionFailure("\(key.name) is not a rate") }
        guard let node = entries[key], let text = string(node, entries.path(key)) else { return nil }
        guard let value = RateLimit.parse(text) else {
            error(
                node, entries.path(key),
                "expected a rate N/PERIOD such as 600/1m or 2/s (N at least 1, PERIOD more than zero), or unlimited")
            return nil
        }
        return value
    }
}
