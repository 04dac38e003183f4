import Glibc
import RunvoyConfig

/// Matches an argv against command rules for one executor.
///
/// Arguments are compared as the array they are, never joined into a string, so quoting cannot change what a
/// rule means. The command (first element) is compared by its *identity*: found through the executor's PATH,
/// its directories resolved through symlinks, its file name kept. So `terraform`, `/usr/bin/terraform` and
/// `/bin/terraform` (with `/bin` a link to `/usr/bin`) are one command, while `reboot` (a link to `systemctl`)
/// stays `reboot`, and a caller's own link named `terraform` is not `/usr/bin/terraform`. The identity is also
/// the path that is executed, so what ran is what was checked. Deny rules also match the fully resolved
/// target and bare file names, so they catch more, never less.
struct CommandMatcher {
    let searchPath: String?
    let workingDirectory: String
    /// The command as typed.
    let typed: String
    /// The command's identity (see above), nil when it was not found. This is what gets executed.
    let identity: String?
    /// The command with every symlink resolved, for deny rules only.
    let target: String?

    /// `withTarget`: also resolve the command completely, which only deny rules use.
    init(argv0: String, searchPath: String?, workingDirectory: String, withTarget: Bool = true) {
        self.searchPath = searchPath
        self.workingDirectory = workingDirectory
        self.typed = argv0
        let found = CommandResolver.resolve(argv0, searchPath: searchPath, workingDirectory: workingDirectory)
        self.identity = found.map(Self.identity)
        self.target = withTarget ? found.map { Self.canonical(Self.normalize($0)) } : nil
    }

    /// `path` (absolute) with `.`, `..` and the symlinks of its directories resolved, and its file name kept.
    static func identity(_ path: String) -> String {
        let normalized = normalize(path)
        guard let slash = normalized.lastIndex(of: "/") else { return normalized }
        let directory = slash == normalized.startIndex ? "/" : String(normalized[..<slash])
        let name = normalized[normalized.index(after: slash)...]
        let resolved = canonical(directory)
        return (resolved == "/" ? "" : resolved) + "/" + name
    }

    func matches(_ pattern: ArgvPattern, argv: [String]) -> Bool {
        if pattern.isAny { return !argv.isEmpty }
        if pattern.allowsTrailingArguments {
            guard argv.count >= pattern.elements.count else { return false }
        } else {
            guard argv.count == pattern.elements.count else { return false }
        }
        let liberal = pattern.effect == .deny
        guard commandMatches(pattern.elements[0], liberal: liberal) else { return false }
        for index in pattern.elements.indices.dropFirst()
        where !Self.argumentMatches(
            pattern.elements[index], argv[index], workingDirectory: workingDirectory, liberal: liberal)
        {
            return false
        }
        return true
    }

    private func commandMatches(_ matcher: ArgumentMatcher, liberal: Bool) -> Bool {
        func basename(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
        func same(_ word: String) -> Bool {
            if word == typed { return true }
            let found = CommandResolver.resolve(word, searchPath: searchPath, workingDirectory: workingDirectory)
            if let identity, found.map(Self.identity) == identity { return true }
            if liberal, let target, found.map({ Self.canonical(Self.normalize($0)) }) == target { return true }
            return false
        }
        switch matcher {
        case .literal(let word): return same(word)
        case .oneOf(let words): return words.contains(where: same)
        case .regex(let pattern):
            var forms = [typed] + (identity.map { [$0] } ?? [])
            if liberal {
                forms += [basename(typed)] + [identity, target].compactMap { $0 }.flatMap { [$0, basename($0)] }
            }
            return forms.contains { Self.wholeMatch(pattern, $0) }
        case .pathUnder(let directory):
            let base = Self.canonical(Self.normalize(directory))
            func inside(_ path: String) -> Bool { base == "/" || path == base || path.hasPrefix(base + "/") }
            if let identity, inside(identity) { return true }
            return liberal && (target.map(inside) == true)
        }
    }

    static func argumentMatches(
        _ matcher: ArgumentMatcher, _ argument: String, workingDirectory: String, liberal: Bool = false
    ) -> Bool {
        switch matcher {
        case .literal(let word): return argument == word
        case .oneOf(let words): return words.contains(argument)
        case .regex(let pattern): return wholeMatch(pattern, argument)
        case .pathUnder(let directory):
            return isPath(argument, under: directory, workingDirectory: workingDirectory, liberal: liberal)
        }
    }

    static func wholeMatch(_ pattern: String, _ text: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return (try? regex.wholeMatch(in: text)) != nil
    }

    /// Whether `path` (relative paths from `workingDirectory`), with `.` and `..` collapsed and symlinks
    /// resolved, is `directory` or inside it. For an allow rule both the written and the resolved form must be
    /// inside, so neither `..` nor a symlink can lead out; for a deny rule (`liberal`) either one is enough, so
    /// a symlink cannot lead around it.
    static func isPath(
        _ path: String, under directory: String, workingDirectory: String, liberal: Bool = false
    )
        -> Bool
    {
        guard !path.isEmpty else { return false }
        let lexical = normalize(path.hasPrefix("/") ? path : workingDirectory + "/" + path)
        let base = normalize(directory)
        func inside(_ candidate: String, _ root: String) -> Bool {
            root == "/" || candidate == root || candidate.hasPrefix(root + "/")
        }
        let written = inside(lexical, base)
        let resolved = inside(canonical(lexical), canonical(base))
        return liberal ? written || resolved : written && resolved
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
