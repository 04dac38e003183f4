import Glibc

/// The few directory operations the daemon's parts share.
public enum FileSystem {
    /// Creates `path` and its missing parents with `mode` (existing ones are left as they are).
    public static func makeDirectories(_ path: String, mode: mode_t) throws(SystemError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST { throw SystemError("mkdir \(current)") }
        }
    }

    /// Names in `directory`, without `.` and `..`; empty when it does not exist or cannot be read.
    public static func entries(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes a directory of plain files; a missing one is fine.
    public static func removeTree(_ directory: String) {
        for name in entries(directory) { unlink(directory + "/" + name) }
        rmdir(directory)
    }
}

/// The wall clock, as the history and the audit trail write times.
public enum WallClock {
    /// Milliseconds since the Unix epoch.
    public static func milliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
