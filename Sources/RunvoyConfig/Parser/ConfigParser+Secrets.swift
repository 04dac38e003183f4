/// `secrets`: the master key file, where secret files go, the shortest value, and reading values back.
/// Each key is read as `ConfigSchema` declares it, over the defaults of the settings type.
extension ConfigParser {
    func parseSecrets(_ top: ConfigEntries) -> SecretsSettings {
        typealias Keys = ConfigSchema.SecretsKeys
        var secrets = SecretsSettings()
        guard let entries = fields(ConfigSchema.TopKeys.secrets, in: top) else { return secrets }
        if let value = absolutePath(Keys.keyFile, in: entries) { secrets.keyFile = value }
        if let value = absolutePath(Keys.runtimeDirectory, in: entries) { secrets.runtimeDirectory = value }
        if let value = integer(Keys.minLength, in: entries) { secrets.minLength = value }
        if let value = boolean(Keys.adminRead, in: entries) { secrets.adminRead = value }
        return secrets
    }
}
