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
        if case .found(let path) = search(
            name, searchPath: searchPath, workingDirectory: workingDirectory, as: identity)
        {
            return path
        }
        return nil
    }

    /// What a search for a command found.
    enum Outcome: Equatable {
        case found(String)
        /// Something is there, but not an executable regular file (a directory, a file without execute bits).
        case notExecutable
        /// Nothing (or nothing the run-as user can reach).
        case notFound
    }

    /// `resolve`, telling a missing command from one that is there but cannot be executed, as a shell does
    /// (126 and 127).
    static func search(
        _ name: String, searchPath: String?, workingDirectory: String, as identity: SpawnRequest.Identity? = nil
    ) -> Outcome {
        if name.isEmpty { return .notFound }
        let candidates: [String]
        if name.contains("/") {
            let base = workingDirectory.hasSuffix("/") ? workingDirectory : workingDirectory + "/"
            candidates = [name.hasPrefix("/") ? name : base + name]
        } else {
            candidates = (searchPath ?? defaultSearchPath).split(separator: ":", omittingEmptySubsequences: true)
                .filter { $0.hasPrefix("/") }.map { $0 + "/" + name }
        }
        // As another user, all candidates are looked at under one identity switch; as root, one by one until found.
        let asUser = switchesIdentity(identity) ? lookUp(candidates, as: identity) : nil
        var sawNonExecutable = false
        for (index, candidate) in candidates.enumerated() {
            switch asUser?[index] ?? lookUp([candidate], as: nil)[0] {
            case .executable: return .found(candidate)
            case .notExecutable: sawNonExecutable = true
            case .absent: continue
            case .unreachable: return sawNonExecutable ? .notExecutable : .notFound
            }
        }
        return sawNonExecutable ? .notExecutable : .notFound
    }

    static func isExecutableFile(_ path: String) -> Bool {
        lookUp([path], as: nil) == [.executable]
    }

    enum Found: Equatable {
        /// An executable regular file.
        case executable
        /// Something that is not an executable regular file: look further, and say so if nothing else is found.
        case notExecutable
        /// Nothing there: look further.
        case absent
        /// A directory on the way may not be searched (or the path cannot be looked up): stop.
        case unreachable
    }

    /// Whether looking as `identity` takes a switch: not for root, nor in a daemon that is not root (which runs
    /// commands as itself).
    static func switchesIdentity(_ identity: SpawnRequest.Identity?) -> Bool {
        guard let identity else { return false }
        return identity.uid != 0 && geteuid() == 0
    }

    /// What each of `paths` is for `identity` (nil: for the daemon itself, which looks through every directory
    /// as root). The identity is switched once for all of them.
    static func lookUp(_ paths: [String], as identity: SpawnRequest.Identity?) -> [Found] {
        func kind(_ info: stat) -> Found {
            info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o111 != 0 ? .executable : .notExecutable
        }
        guard let identity, switchesIdentity(identity) else {
            // As root nothing is out of reach: look past what is not there, as a shell does.
            return paths.map { path in
                var info = stat()
                return stat(path, &info) == 0 ? kind(info) : .absent
            }
        }
        var infos = Array(repeating: stat(), count: paths.count)
        var errors = [Int32](repeating: 0, count: paths.count)
        let cStrings = paths.map { strdup($0) }
        defer { for pointer in cStrings { free(pointer) } }
        let switched = cStrings.map { UnsafePointer($0) }.withUnsafeBufferPointer { pathsBuffer in
            identity.groups.withUnsafeBufferPointer { groups in
                runvoy_stat_as(
                    pathsBuffer.baseAddress, paths.count, &infos, &errors, identity.uid, identity.gid,
                    groups.baseAddress, groups.count) == 0
            }
        }
        // Not able to look as that user: find nothing rather than guess.
        guard switched else { return paths.map { _ in .unreachable } }
        return zip(infos, errors).map { info, error in
            error == 0 ? kind(info) : error == ENOENT || error == ENOTDIR ? .absent : .unreachable
        }
    }
}

/// A command as typed (`argv[0]`) and what one search for it found. `ExecPlan` searches once, as the run-as user;
/// the command rules are checked against the result (`CommandMatcher`) and its `identity` is what runs, so what
/// was checked is what runs.
struct ResolvedCommand: Sendable, Equatable {
    let typed: String
    let outcome: CommandResolver.Outcome
    /// The path executed: the found path with its directories resolved and its file name kept
    /// (`CommandMatcher.identity`); nil when nothing executable was found.
    let identity: String?
    /// The user the search looked as, when it was not the daemon's own view.
    let searchedAs: SpawnRequest.Identity?

    init(
        typed: String, outcome: CommandResolver.Outcome, identity: String?, searchedAs: SpawnRequest.Identity? = nil
    ) {
        self.typed = typed
        self.outcome = outcome
        self.identity = identity
        self.searchedAs = searchedAs
    }

    /// Searches for `typed` as `CommandResolver.search` does (as `identity`, the run-as user, when given).
    init(_ typed: String, searchPath: String?, workingDirectory: String, as identity: SpawnRequest.Identity? = nil) {
        let outcome = CommandResolver.search(
            typed, searchPath: searchPath, workingDirectory: workingDirectory, as: identity)
        self.init(
            typed: typed, outcome: outcome, identity: outcome.found.map(CommandMatcher.identity),
            searchedAs: CommandResolver.switchesIdentity(identity) ? identity : nil)
    }
}

extension CommandResolver.Outcome {
    /// The path found, if any.
    var found: String? {
        if case .found(let path) = self { return path }
        return nil
    }
}
