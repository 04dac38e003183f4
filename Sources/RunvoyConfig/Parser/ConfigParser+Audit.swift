/// `audit`: whether to refuse what cannot be audited, and how long to wait for the journal.
/// Each key is read as `ConfigSchema` declares it, over the defaults of the settings type.
extension ConfigParser {
    func parseAudit(_ top: ConfigEntries) -> AuditSettings {
        typealias Keys = ConfigSchema.AuditKeys
        var audit = AuditSettings()
        guard let entries = fields(ConfigSchema.TopKeys.audit, in: top) else { return audit }
        if let value = boolean(Keys.failClosed, in: entries) { audit.failClosed = value }
        if let value = duration(Keys.writeTimeout, in: entries) { audit.writeTimeout = value }
        return audit
    }
}
