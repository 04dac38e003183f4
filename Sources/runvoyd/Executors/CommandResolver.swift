import CRunvoyPosix
import Glibc

/// Finds the program to execute the way a shell does: names with a slash as given, others through PATH.
enum CommandResolver {
    static let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The absolute path of `name`, or nil when no PATH entry holds an executable regular file of that name.
    /// A relative name with a slash is taken relative to `workingDirectory`.
    ///
    /// With `identity` (the run-as user the command will run as), the search sees only what that user can
    /// reach: a candidate behind a directory the user may not search is not found, and the PATH search stops
    /// at such a directory instead of looking past it. So whether a command is found never depends on what a
    /// folder only root can read holds, and what is found is what a search as root finds too (the command rules
    /// are checked against that).
    static func resolve(
        _ name: String, searchPath: String?, workingDirectory: String, as identity: SpawnRequest.Identity? = nil
    ) -> String? {
        if name.isEmpty { return nil }
        if name.contains("/") {
            let base = workingDirectory.hasSuffix("/") ? workingDirectory : workingDirectory + "/"
            let path = name.hasPrefix("/") ? name : base + name
            return lookUp(path, as: identity) == .executable ? path : nil
        }
        for directory in (searchPath ?? defaultSearchPath).split(separator: ":", omittingEmptySubsequences: true)
        where directory.hasPrefix("/") {
            let candidate = directory + "/" + name
            switch lookUp(candidate, as: identity) {
            case .executable: return candidate
            case .absent: continue
            case .unreachable: return nil
            }
        }
        return nil
    }

    static func isExecutableFile(_ path: String) -> Bool {
        lookUp(path, as: nil) == .executable
    }

    enum Found: Equatable {
        /// An executable regular file.
        case executable
        /// Nothing there, or something that is not an executable regular file: look further.
        case absent
        /// A directory on the way may not be searched (or the path cannot be looked up): stop.
        case unreachable
    }

    /// What `path` is for `identity` (nil: for the daemon itself, which looks through every directory as root).
    static func lookUp(_ path: String, as identity: SpawnRequest.Identity?) -> Found {
        var info = stat()
        if let identity, identity.uid != 0, geteuid() == 0 {
            let error = identity.groups.withUnsafeBufferPointer { groups -> Int32 in
                runvoy_stat_as(path, &info, identity.uid, identity.gid, groups.baseAddress, groups.count) == 0
                    ? 0 : errno
            }
            if error != 0 { return error == ENOENT || error == ENOTDIR ? .absent : .unreachable }
        } else if stat(path, &info) != 0 {
            // As root nothing is out of reach: look past what is not there, as a shell does.
            return .absent
        }
        return info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o111 != 0 ? .executable : .absent
    }
}
