import Glibc
import RunvoyConfig

/// Matches an argv against command rules for one executor.
///
/// Arguments are compared as the array they are, never joined into a string, so quoting cannot change what a
/// rule means. The command (first element) is compared after resolving both sides through the executor's PATH
/// and `realpath`, so `terraform`, `/usr/bin/terraform` and a symlink to it are the same command.
struct CommandMatcher {
    let searchPath: String?
    let workingDirectory: String
    /// The command as typed.
    let typed: String
    /// The command resolved through PATH and symlinks, nil when it was not found.
    let resolved: String?

    init(argv0: String, searchPath: String?, workingDirectory: String) {
        self.searchPath = searchPath
        self.workingDirectory = workingDirectory
        self.typed = argv0
        self.resolved = CommandResolver.resolve(argv0, searchPath: searchPath, workingDirectory: workingDirectory)
            .map(Self.canonical)
    }

    func matches(_ pattern: ArgvPattern, argv: [String]) -> Bool {
        if pattern.isAny { return !argv.isEmpty }
        if pattern.allowsTrailingArguments {
            guard argv.count >= pattern.elements.count else { return false }
        } else {
            guard argv.count == pattern.elements.count else { return false }
        }
        guard commandMatches(pattern.elements[0]) else { return false }
        for index in pattern.elements.indices.dropFirst()
        where !Self.argumentMatches(pattern.elements[index], argv[index], workingDirectory: workingDirectory) {
            return false
        }
        return true
    }

    private func commandMatches(_ matcher: ArgumentMatcher) -> Bool {
        func same(_ word: String) -> Bool {
            if word == typed { return true }
            guard let resolved else { return false }
            return CommandResolver.resolve(word, searchPath: searchPath, workingDirectory: workingDirectory)
                .map(Self.canonical) == resolved
        }
        switch matcher {
        case .literal(let word): return same(word)
        case .oneOf(let words): return words.contains(where: same)
        case .regex(let pattern):
            return Self.wholeMatch(pattern, typed) || resolved.map { Self.wholeMatch(pattern, $0) } == true
        case .pathUnder(let directory):
            return resolved.map { Self.isPath($0, under: directory, workingDirectory: "/") } == true
        }
    }

    static func argumentMatches(_ matcher: ArgumentMatcher, _ argument: String, workingDirectory: String) -> Bool {
        switch matcher {
        case .literal(let word): return argument == word
        case .oneOf(let words): return words.contains(argument)
        case .regex(let pattern): return wholeMatch(pattern, argument)
        case .pathUnder(let directory): return isPath(argument, under: directory, workingDirectory: workingDirectory)
        }
    }

    static func wholeMatch(_ pattern: String, _ text: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return (try? regex.wholeMatch(in: text)) != nil
    }

    /// Whether `path` (relative paths from `workingDirectory`), with `.` and `..` collapsed and symlinks
    /// resolved, is `directory` or inside it. Both the written and the resolved form must be inside, so neither
    /// `..` nor a symlink can lead out.
    static func isPath(_ path: String, under directory: String, workingDirectory: String) -> Bool {
        guard !path.isEmpty else { return false }
        let lexical = normalize(path.hasPrefix("/") ? path : workingDirectory + "/" + path)
        let base = normalize(directory)
        func inside(_ candidate: String, _ root: String) -> Bool {
            root == "/" || candidate == root || candidate.hasPrefix(root + "/")
        }
        guard inside(lexical, base) else { return false }
        return inside(canonical(lexical), canonical(base))
    }

    /// `/a/./b//c/../d` → `/a/b/d`, never above `/`.
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                _ = parts.popLast()
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The path with every symlink in its existing part resolved (`realpath` of the longest existing prefix,
    /// then the rest as written). Expects a normalized absolute path.
    static func canonical(_ path: String) -> String {
        if let real = realpath(path) { return real }
        var head = path
        var tail: [Substring] = []
        while head != "/" {
            guard let slash = head.lastIndex(of: "/") else { break }
            tail.insert(head[head.index(after: slash)...], at: 0)
            head = slash == head.startIndex ? "/" : String(head[..<slash])
            if let real = realpath(head) {
                return (real == "/" ? "" : real) + "/" + tail.joined(separator: "/")
            }
        }
        return path
    }

    private static func realpath(_ path: String) -> String? {
        guard let resolved = Glibc.realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
