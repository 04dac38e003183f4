/// `history`: stored output per execution and retention by age and total size.
/// Each key is read as `ConfigSchema` declares it, over the defaults of the settings type.
extension ConfigParser {
    func parseHistory(_ top: ConfigEntries) -> HistorySettings {
        typealias Keys = ConfigSchema.HistoryKeys
        var history = HistorySettings()
        guard let entries = fields(ConfigSchema.TopKeys.history, in: top) else { return history }
        if let value = size(Keys.maxOutputBytes, in: entries) { history.maxOutputBytes = value }
        if let value = durationOrWord(Keys.maxAge, in: entries) { history.maxAge = value }
        if let value = sizeOrWord(Keys.maxTotalBytes, in: entries) { history.maxTotalBytes = value }
        if let value = duration(Keys.pruneInterval, in: entries) { history.pruneInterval = value }
        if let value = size(Keys.minFreeBytes, in: entries) { history.minFreeBytes = value }
        return history
    }
}
