import Glibc

/// Finds the program to execute the way a shell does: names with a slash as given, others through PATH.
enum CommandResolver {
    static let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The absolute path of `name`, or nil when no PATH entry holds an executable regular file of that name.
    /// A relative name with a slash is taken relative to `workingDirectory`.
    static func resolve(_ name: String, searchPath: String?, workingDirectory: String) -> String? {
        if name.isEmpty { return nil }
        if name.contains("/") {
            let base = workingDirectory.hasSuffix("/") ? workingDirectory : workingDirectory + "/"
            let path = name.hasPrefix("/") ? name : base + name
            return isExecutableFile(path) ? path : nil
        }
        for directory in (searchPath ?? defaultSearchPath).split(separator: ":", omittingEmptySubsequences: true)
        where directory.hasPrefix("/") {
            let candidate = directory + "/" + name
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        return info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o111 != 0
    }
}
