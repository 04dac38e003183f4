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

    /// Who must not be able to redirect a path argument between the check and the open (nil for root).
    let writer: PathResolver.Writer?

    /// Matches against `command` as it was found (for `exec`, the search the launch executes the result of).
    /// `withTarget`: also resolve the command completely, which only deny rules use.
    init(
        command: ResolvedCommand, searchPath: String?, workingDirectory: String, writer: PathResolver.Writer? = nil,
        withTarget: Bool = true
    ) {
        self.searchPath = searchPath
        self.workingDirectory = workingDirectory
        self.writer = writer
        self.typed = command.typed
        self.identity = command.identity
        self.target = withTarget ? command.outcome.found.map(Self.target) : nil
    }

    /// Searches for `argv0` as the daemon (for `explain` and policy expectations, where nothing runs).
    init(
        argv0: String, searchPath: String?, workingDirectory: String, writer: PathResolver.Writer? = nil,
        withTarget: Bool = true
    ) {
        self.init(
            command: ResolvedCommand(argv0, searchPath: searchPath, workingDirectory: workingDirectory),
            searchPath: searchPath, workingDirectory: workingDirectory, writer: writer, withTarget: withTarget)
    }

    /// `path` (absolute) with the directories before its file name resolved as the kernel walks them (links
    /// followed, `..` applied after them), and its file name kept.
    static func identity(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        let name = path[path.index(after: slash)...]
        let directory = PathResolver.resolve(String(path[..<slash]))
        return String(decoding: directory.bytes, as: UTF8.self) + "/" + name
    }

    /// `path` (absolute) with every link resolved, its file name too.
    static func target(_ path: String) -> String {
        PathResolver.resolve(path).path
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
            pattern.elements[index], argv[index], workingDirectory: workingDirectory, writer: writer, liberal: liberal)
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
            if liberal, let target, found.map(Self.target) == target { return true }
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
            let base = PathResolver.resolve(directory).bytes
            if let identity, PathResolver.isInside(Array(identity.utf8), base) { return true }
            return liberal && target.map { PathResolver.isInside(Array($0.utf8), base) } == true
        }
    }

    static func argumentMatches(
        _ matcher: ArgumentMatcher, _ argument: String, workingDirectory: String,
        writer: PathResolver.Writer? = nil, liberal: Bool = false
    ) -> Bool {
        switch matcher {
        case .literal(let word): return argument == word
        case .oneOf(let words): return words.contains(argument)
        case .regex(let pattern): return wholeMatch(pattern, argument)
        case .pathUnder(let directory):
            return isPath(
                argument, under: directory, workingDirectory: workingDirectory, writer: writer, liberal: liberal)
        }
    }

    static func wholeMatch(_ pattern: String, _ text: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return (try? regex.wholeMatch(in: text)) != nil
    }

    /// Whether `path` (relative paths from `workingDirectory`) is `directory` or inside it, judged on each way
    /// it can be read: as written with `.` and `..` removed as text; as the kernel resolves it (links followed,
    /// `..` applied to where they lead); and as a program that cleans the path first would open it. An allow
    /// rule needs every reading inside, a path the daemon can resolve with certainty, and — for a `writer` (the
    /// caller, unless root) — a path that passes through no directory the writer can change, since the command
    /// opens it later. A deny rule (`liberal`) matches when any reading is inside or the path is uncertain or
    /// changeable, so neither a link nor a race leads around it. See docs/SECURITY.md.
    static func isPath(
        _ path: String, under directory: String, workingDirectory: String, writer: PathResolver.Writer? = nil,
        liberal: Bool = false
    ) -> Bool {
        guard !path.isEmpty else { return false }
        let written = PathResolver.lexical(path, from: workingDirectory)
        let writtenInside = written.isInside(PathResolver.lexical(directory))
        if liberal && writtenInside { return true }
        if !liberal && !writtenInside { return false }
        let base = PathResolver.resolve(directory)
        let kernel = PathResolver.resolve(path, from: workingDirectory, writer: writer)
        let cleaned = PathResolver.resolve(
            bytes: written.bytes.isEmpty ? [UInt8(ascii: "/")] : written.bytes, writer: writer)
        let readings = [kernel, cleaned]
        if liberal {
            return readings.contains { $0.isInside(base) || $0.indeterminate || $0.changeable }
        }
        return readings.allSatisfy { $0.isInside(base) && !$0.indeterminate && !$0.changeable }
    }

    /// `/a/./b//c/../d` → `/a/b/d`, never above `/`.
    static func normalize(_ path: String) -> String {
        PathResolver.lexical(path).path
    }
}
