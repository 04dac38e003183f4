/// `metrics`: the metrics socket, its mode and group, the textfile and its interval, a TCP listener, user labels.
/// Each key is read as `ConfigSchema` declares it, over the defaults of the settings type.
extension ConfigParser {
    func parseMetrics(_ top: ConfigEntries) -> MetricsSettings {
        typealias Keys = ConfigSchema.MetricsKeys
        var metrics = MetricsSettings()
        guard let entries = fields(ConfigSchema.TopKeys.metrics, in: top) else { return metrics }
        metrics.socket = absolutePath(Keys.socket, in: entries)
        if let mode = octalMode(Keys.socketMode, in: entries) { metrics.socketMode = mode }
        metrics.socketGroup = account(Keys.socketGroup, in: entries)
        metrics.textfile = absolutePath(Keys.textfile, in: entries)
        if let interval = duration(Keys.textfileInterval, in: entries) { metrics.textfileInterval = interval }
        if let listen = string(Keys.listen, in: entries) {
            if MetricsSettings.hostAndPort(listen) == nil {
                error(entries[Keys.listen], entries.path(Keys.listen), "expected HOST:PORT, such as 127.0.0.1:9464")
            } else {
                metrics.listen = listen
            }
        }
        if let value = boolean(Keys.userLabels, in: entries) { metrics.userLabels = value }
        return metrics
    }

}
