import Foundation
import Glibc
import Testing

@testable import RunvoyDaemon

/// `path_under` decides on the path the kernel opens: the resolver against `realpath(3)` on generated trees of
/// directories, files and links (inside, outside, relative, absolute, chains, loops), and its cost.
struct PathResolverTests {
    /// SplitMix64: a small generator whose runs are fixed by their seed, so a failure names a reproducible case.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    final class Scratch {
        let root: String
        init(_ label: String) throws {
            var template = Array("/tmp/runvoy-\(label)-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
            // realpath of the scratch root itself, so expectations compare like with like.
            root = PathResolver.resolve(String(cString: made)).path
        }
        deinit { _ = system("rm -rf '\(root)'") }
    }

    static func realpath(_ path: String) -> (path: String?, errno: Int32) {
        guard let resolved = Glibc.realpath(path, nil) else { return (nil, errno) }
        defer { free(resolved) }
        return (String(cString: resolved), 0)
    }

    /// A random tree under `root`: directories `in` (the base) and `out` with subdirectories, files, and links
    /// to anything (relative or absolute, dangling, to other links, in loops).
    static func makeTree(_ root: String, _ random: inout SeededGenerator) -> (names: [String], entries: [String]) {
        let names = ["a", "b", "c", "l1", "l2", "l3"]
        var directories = [root, root + "/in", root + "/out"]
        mkdir(root + "/in", 0o755)
        mkdir(root + "/out", 0o755)
        for _ in 0..<Int.random(in: 2...7, using: &random) {
            let parent = directories.randomElement(using: &random)!
            let path = parent + "/" + ["a", "b", "c"].randomElement(using: &random)!
            if mkdir(path, 0o755) == 0 { directories.append(path) }
        }
        var entries = directories
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let path =
                directories.randomElement(using: &random)! + "/" + ["a", "b", "c"].randomElement(using: &random)!
            if FileManager.default.createFile(atPath: path, contents: Data("x".utf8)) { entries.append(path) }
        }
        for _ in 0..<Int.random(in: 2...8, using: &random) {
            let directory = directories.randomElement(using: &random)!
            let path = directory + "/" + ["l1", "l2", "l3"].randomElement(using: &random)!
            let target: String
            switch Int.random(in: 0..<4, using: &random) {
            case 0: target = (entries + directories).randomElement(using: &random)!  // absolute
            case 1:  // relative, up and down
                let ups = Int.random(in: 0...3, using: &random)
                let downs = (0..<Int.random(in: 0...3, using: &random)).map { _ in names.randomElement(using: &random)!
                }
                target = (Array(repeating: "..", count: ups) + downs + ["."]).joined(separator: "/")
            case 2: target = names.randomElement(using: &random)!  // a sibling, maybe another link or itself
            default: target = "/nonexistent-\(Int.random(in: 0...9, using: &random))"
            }
            if symlink(target, path) == 0 { entries.append(path) }
        }
        return (names, entries)
    }

    static func randomPath(_ names: [String], _ root: String, _ random: inout SeededGenerator) -> String {
        let vocabulary = names + [".", "..", "..", "", "in", "out", "l1", "l2", "l3"]
        var components: [String] = []
        for _ in 0..<Int.random(in: 1...5, using: &random) {
            let name = vocabulary.randomElement(using: &random)!
            components.append(name)
            // Often `..` right after a link: where text and kernel part ways.
            if name.hasPrefix("l"), Bool.random(using: &random) { components.append("..") }
        }
        let relative = components.joined(separator: "/")
        switch Int.random(in: 0..<3, using: &random) {
        case 0: return root + "/" + relative
        case 1: return root + "/in/" + relative
        default: return relative  // from the working directory, root/in
        }
    }

    @Test func resolvesLikeRealpathAndDecidesConsistentlyWithIt() throws {
        var compared = 0
        var textWouldLie = 0
        for seed in UInt64(1)...400 {
            var random = SeededGenerator(state: seed)
            let scratch = try Scratch("resolve")
            let root = scratch.root
            let (names, _) = Self.makeTree(root, &random)
            let base = root + "/in"
            for _ in 0..<60 {
                let path = Self.randomPath(names, root, &random)
                if path.isEmpty { continue }  // no file has the empty name
                let absolute = path.hasPrefix("/") ? path : base + "/" + path
                let resolution = PathResolver.resolve(path, from: base)
                let real = Self.realpath(absolute)
                let context = "seed \(seed): \(path)"
                if let realPath = real.path {
                    compared += 1
                    if PathResolver.resolve(PathResolver.lexical(path, from: base).path).path != realPath {
                        textWouldLie += 1
                    }
                    #expect(resolution.path == realPath, "\(context)")
                    #expect(!resolution.indeterminate, "\(context)")
                } else if real.errno == ELOOP {
                    #expect(resolution.indeterminate, "\(context)")
                }
                let allowed = CommandMatcher.isPath(path, under: base, workingDirectory: base)
                let denied = CommandMatcher.isPath(path, under: base, workingDirectory: base, liberal: true)
                let realInside = real.path.map { $0 == base || $0.hasPrefix(base + "/") }
                if allowed {
                    // Allowed means it exists inside, or does not exist yet and would be created inside.
                    #expect(realInside != false, "\(context): allowed but realpath is \(real.path ?? "-")")
                    #expect(real.errno != ELOOP, "\(context): allowed a loop")
                }
                if realInside == true || real.errno == ELOOP {
                    #expect(denied, "\(context): realpath is inside (or loops) but a deny rule does not match")
                }
                #expect(!allowed || denied, "\(context): allowed but not denied")
            }
        }
        // The trees must give realpath something to agree on, not only dangling paths.
        #expect(compared > 2000, "only \(compared) paths existed")
        // ... and enough of them where removing `..` as text gives another answer than the kernel.
        #expect(textWouldLie > 100, "only \(textWouldLie) paths where `..` follows a link")
    }

    @Test func theIssueReproductionsAreDecidedOnWhatTheKernelOpens() throws {
        let scratch = try Scratch("issue")
        let data = scratch.root + "/data"
        let outside = scratch.root + "/outside"
        for directory in [data, data + "/private", data + "/private/sub", outside, outside + "/v1"] {
            mkdir(directory, 0o755)
        }
        FileManager.default.createFile(atPath: outside + "/secret.txt", contents: Data("s".utf8))
        FileManager.default.createFile(atPath: data + "/private/key.txt", contents: Data("k".utf8))
        symlink(outside + "/v1", data + "/current")
        let home = scratch.root + "/home"
        mkdir(home, 0o755)
        symlink(data + "/private/sub", home + "/lnk")

        // Allow bypass: DATA/current/.. is the parent of the link's target, outside DATA.
        #expect(PathResolver.resolve(data + "/current/../secret.txt").path == outside + "/secret.txt")
        #expect(!CommandMatcher.isPath(data + "/current/../secret.txt", under: data, workingDirectory: "/"))
        #expect(!CommandMatcher.isPath("current/../secret.txt", under: data, workingDirectory: data))
        #expect(CommandMatcher.isPath(data + "/current/../../data/x", under: scratch.root, workingDirectory: "/"))
        // Deny bypass: ~/lnk/.. is DATA/private.
        #expect(
            CommandMatcher.isPath(
                home + "/lnk/../key.txt", under: data + "/private", workingDirectory: "/", liberal: true))
        #expect(
            !CommandMatcher.isPath(home + "/other", under: data + "/private", workingDirectory: "/", liberal: true))
        // A NUL is not where a name ends: `current\0` is no file, so the rest is applied as written.
        #expect(PathResolver.resolve(data + "/current\u{0}/../x").path == data + "/x")
        // The command's identity: its directory resolved as the kernel walks it.
        #expect(CommandMatcher.identity(home + "/lnk/../prog") == data + "/private/prog")
        #expect(CommandMatcher.identity("/usr/bin/../bin/env") == PathResolver.resolve("/usr/bin").path + "/env")
    }

    @Test func tooManyLinksAndProcfsLinksAreNeverAllowedAndAlwaysDenied() throws {
        let scratch = try Scratch("loop")
        let root = scratch.root
        symlink(".", root + "/self")
        symlink("loop", root + "/loop")
        let deep = root + String(repeating: "/self", count: 40) + "/x"
        #expect(!PathResolver.resolve(deep).indeterminate)
        #expect(PathResolver.resolve(deep).path == root + "/x")
        let tooDeep = root + String(repeating: "/self", count: 41) + "/x"
        #expect(PathResolver.resolve(tooDeep).indeterminate)
        #expect(PathResolver.resolve(root + "/loop/x").indeterminate)
        for path in [tooDeep, root + "/loop/x"] {
            #expect(!CommandMatcher.isPath(path, under: root, workingDirectory: "/"))
            #expect(CommandMatcher.isPath(path, under: root + "/elsewhere", workingDirectory: "/", liberal: true))
        }
        for path in ["/proc/self/status", "/proc/self/cwd", "/dev/stdin", "/dev/fd/0"]
        where Self.realpath(path).path != nil {
            #expect(PathResolver.resolve(path).indeterminate, "\(path)")
            #expect(!CommandMatcher.isPath(path, under: "/", workingDirectory: "/"), "\(path)")
            #expect(CommandMatcher.isPath(path, under: root, workingDirectory: "/", liberal: true), "\(path)")
        }
        #expect(!PathResolver.resolve("/proc/1/status").indeterminate)
    }

    @Test func directoriesTheCallerCanChangeAreRecognized() throws {
        let scratch = try Scratch("writer")
        let root = scratch.root
        chmod(root, 0o755)
        let writer = PathResolver.Writer(uid: 4242, groups: [4242, 5000])
        func changeable(_ path: String) -> Bool { PathResolver.resolve(path, writer: writer).changeable }
        for (name, mode, uid, gid) in [
            ("owned", 0o755, 4242, 0), ("group", 0o775, 0, 5000), ("othergroup", 0o775, 0, 6000),
            ("world", 0o777, 0, 0), ("sticky", 0o1777, 0, 0), ("plain", 0o755, 0, 0),
        ] as [(String, mode_t, uid_t, gid_t)] {
            mkdir(root + "/" + name, 0o700)
            chown(root + "/" + name, uid, gid)
            chmod(root + "/" + name, mode)
        }
        FileManager.default.createFile(atPath: root + "/sticky/roots", contents: Data())
        FileManager.default.createFile(atPath: root + "/sticky/mine", contents: Data())
        chown(root + "/sticky/mine", 4242, 4242)
        FileManager.default.createFile(atPath: root + "/plain/f", contents: Data())

        #expect(!changeable(root + "/plain/f"))
        #expect(changeable(root + "/owned/f"))
        #expect(changeable(root + "/group/f"))
        #expect(!changeable(root + "/othergroup/f"))
        #expect(changeable(root + "/world/f"))
        #expect(!changeable(root + "/sticky/roots"))
        #expect(changeable(root + "/sticky/mine"))
        #expect(changeable(root + "/sticky/not-yet"))
        // A link from a safe place into a changeable one is changeable; `..` out of one looks nothing up there.
        symlink(root + "/owned", root + "/plain/to-owned")
        #expect(changeable(root + "/plain/to-owned/f"))
        #expect(!changeable(root + "/owned/../plain/f"))
        #expect(!PathResolver.resolve(root + "/owned/f").changeable)

        // As a rule: refused for allow, matched for deny; root is never checked.
        #expect(CommandMatcher.isPath(root + "/plain/f", under: root, workingDirectory: "/", writer: writer))
        #expect(!CommandMatcher.isPath(root + "/owned/f", under: root, workingDirectory: "/", writer: writer))
        #expect(
            CommandMatcher.isPath(
                root + "/owned/f", under: root + "/plain", workingDirectory: "/", writer: writer, liberal: true))
        #expect(CommandMatcher.isPath(root + "/owned/f", under: root, workingDirectory: "/", writer: nil))
    }

    // MARK: - Cost

    @Test func resolutionIsLinearInTheNumberOfComponents() throws {
        let scratch = try Scratch("linear")
        let root = scratch.root
        mkdir(root + "/d", 0o755)
        // Existing components (each one system call), then a long tail that does not exist.
        func steps(_ n: Int) -> (existing: Int, missing: Int) {
            let existing = root + String(repeating: "/d/..", count: n) + "/f"
            let missing = root + "/d" + String(repeating: "/x", count: n) + "/f"
            let a = PathResolver.resolve(existing)
            let b = PathResolver.resolve(missing)
            #expect(a.path == root + "/f")
            #expect(b.bytes.count == root.utf8.count + 2 + 2 * n + 2)
            return (a.steps, b.steps)
        }
        let rootComponents = root.split(separator: "/").count
        let small = steps(16_000)
        let large = steps(32_000)
        #expect(small.existing == rootComponents + 2 * 16_000 + 1)
        #expect(small.missing == rootComponents + 1 + 16_000 + 1)
        #expect(large.existing - small.existing == 2 * 16_000)
        #expect(large.missing - small.missing == 16_000)
        // The whole policy question costs the same kind of walk.
        let argument = root + "/d" + String(repeating: "/x", count: 16_000) + "/f"
        #expect(CommandMatcher.isPath(argument, under: root, workingDirectory: "/"))
        #expect(PathResolver.lexical(argument).steps == rootComponents + 1 + 16_000 + 1)
    }

    @Test func linksAddAtMostTheirTargetsToTheWalk() throws {
        let scratch = try Scratch("linkcost")
        let root = scratch.root
        symlink(".", root + "/s")
        let path = root + String(repeating: "/s", count: 40) + String(repeating: "/x", count: 1000)
        let resolution = PathResolver.resolve(path)
        #expect(!resolution.indeterminate)
        // Each link's target is one component (".").
        #expect(resolution.steps == root.split(separator: "/").count + 40 * 2 + 1000)
    }
}
