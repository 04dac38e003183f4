/// `socket`: where the daemon listens, the socket file's mode and its group.
/// Each key is read as `ConfigSchema` declares it, over the defaults of the settings type.
extension ConfigParser {
    func parseSocket(_ top: ConfigEntries) -> SocketSettings {
        typealias Keys = ConfigSchema.SocketKeys
        var socket = SocketSettings()
        guard let entries = fields(ConfigSchema.TopKeys.socket, in: top) else { return socket }
        if let path = absolutePath(Keys.path, in: entries) { socket.path = path }
        if let mode = octalMode(Keys.mode, in: entries) { socket.mode = mode }
        if let group = account(Keys.group, in: entries) { socket.group = group }
        return socket
    }
}
