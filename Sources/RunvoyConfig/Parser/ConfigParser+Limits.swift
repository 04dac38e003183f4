/// `limits`: connections, executions, frames and the size of a request's argv and environment.
/// Each key is read as `ConfigSchema` declares it, over the defaults of the settings type.
extension ConfigParser {
    func parseLimits(_ top: ConfigEntries) -> Limits {
        typealias Keys = ConfigSchema.LimitsKeys
        var limits = Limits()
        guard let entries = fields(ConfigSchema.TopKeys.limits, in: top) else { return limits }
        if let value = integer(Keys.maxFrameBytes, in: entries) { limits.maxFrameBytes = value }
        if let value = duration(Keys.idleTimeout, in: entries) { limits.idleTimeout = value }
        if let value = integer(Keys.maxConnections, in: entries) { limits.maxConnections = value }
        if let value = integer(Keys.maxExecutions, in: entries) { limits.maxExecutions = value }
        if let value = integer(Keys.maxConnectionsPerUser, in: entries) { limits.maxConnectionsPerUser = value }
        if let value = integer(Keys.maxConnectionsWithoutRole, in: entries) { limits.maxConnectionsWithoutRole = value }
        if let value = integer(Keys.reservedAdminConnections, in: entries) { limits.reservedAdminConnections = value }
        if let value = integer(Keys.maxExecutionsPerUser, in: entries) { limits.maxExecutionsPerUser = value }
        if let value = integer(Keys.reservedAdminExecutions, in: entries) { limits.reservedAdminExecutions = value }
        if let value = size(Keys.maxPendingBytesPerUser, in: entries) { limits.maxPendingBytesPerUser = Int(value) }
        if let value = size(Keys.maxEditBytes, in: entries) { limits.maxEditBytes = Int(value) }
        applyShares(&limits, entries)
        parseRates(entries, into: &limits)
        // The request limits, in the order they have always been reported in.
        if let value = integer(Keys.maxArguments, in: entries) { limits.maxArguments = value }
        if let value = size(Keys.maxArgumentBytes, in: entries) { limits.maxArgumentBytes = Int(value) }
        if let value = size(Keys.maxArgvBytes, in: entries) { limits.maxArgvBytes = Int(value) }
        if let value = size(Keys.maxEnvBytes, in: entries) { limits.maxEnvBytes = Int(value) }
        if let value = integer(Keys.maxEnvEntries, in: entries) { limits.maxEnvEntries = value }
        return limits
    }

    /// A share or a reserve left out is at most a quarter of its ceiling (a share at least 1), so a small ceiling
    /// still leaves room for several users and administrators; a reserve written as large as its ceiling would
    /// leave nothing to anyone but administrators.
    private func applyShares(_ limits: inout Limits, _ entries: ConfigEntries) {
        typealias Keys = ConfigSchema.LimitsKeys
        let quarterOfConnections = max(1, limits.maxConnections / 4)
        let quarterOfExecutions = max(1, limits.maxExecutions / 4)
        if !entries.contains(Keys.maxConnectionsPerUser) {
            limits.maxConnectionsPerUser = min(limits.maxConnectionsPerUser, quarterOfConnections)
        }
        if !entries.contains(Keys.maxConnectionsWithoutRole) {
            limits.maxConnectionsWithoutRole = min(limits.maxConnectionsWithoutRole, quarterOfConnections)
        }
        if !entries.contains(Keys.maxExecutionsPerUser) {
            limits.maxExecutionsPerUser = min(limits.maxExecutionsPerUser, quarterOfExecutions)
        }
        if !entries.contains(Keys.reservedAdminConnections) {
            limits.reservedAdminConnections = min(limits.reservedAdminConnections, limits.maxConnections / 4)
        } else if limits.reservedAdminConnections >= limits.maxConnections {
            error(
                entries[Keys.reservedAdminConnections], entries.path(Keys.reservedAdminConnections),
                "must be less than max_connections (\(limits.maxConnections)), or no one else could connect")
        }
        if !entries.contains(Keys.reservedAdminExecutions) {
            limits.reservedAdminExecutions = min(limits.reservedAdminExecutions, limits.maxExecutions / 4)
        } else if limits.reservedAdminExecutions >= limits.maxExecutions {
            error(
                entries[Keys.reservedAdminExecutions], entries.path(Keys.reservedAdminExecutions),
                "must be less than max_executions (\(limits.maxExecutions)), or no one else could run a command")
        }
    }
}
