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
        // The request limits, in the order they have always been reported in.
        if let value = integer(Keys.maxArguments, in: entries) { limits.maxArguments = value }
        if let value = size(Keys.maxArgumentBytes, in: entries) { limits.maxArgumentBytes = Int(value) }
        if let value = size(Keys.maxArgvBytes, in: entries) { limits.maxArgvBytes = Int(value) }
        if let value = size(Keys.maxEnvBytes, in: entries) { limits.maxEnvBytes = Int(value) }
        if let value = integer(Keys.maxEnvEntries, in: entries) { limits.maxEnvEntries = value }
        return limits
    }
}
