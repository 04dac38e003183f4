// This target reads runvoyd's internals (`@testable import RunvoyDaemon`), which only a debug build allows;
// scripts/fuzz builds in debug. A release build of the package (scripts/build-deb, check-release) gets a stub.
#if DEBUG
    import FuzzSupport
    import Glibc

    @testable import RunvoyDaemon

    /// Path decisions (`PathResolver` and `CommandMatcher.isPath`, what `path_under` rules use) on any path, in a fixed
    /// tree of folders and links made once per process (links up, across, absolute, dangling, in a loop, and chains).
    /// Checks, besides "no crash":
    /// - a resolution is a clean absolute path: no empty, `.` or `..` component;
    /// - when `realpath(3)` resolves the path and the resolver is certain, both name the same file;
    /// - the work is linear: steps at most the path's length plus the links' targets;
    /// - an allow rule's `path_under` never admits a path whose real location is outside the folder, and whatever it
    ///   admits a deny rule's `path_under` catches too.
    ///
    /// Input: the path from the front; from the end, the working directory and the rule's folder (choices in the
    /// tree) and whether the caller is an unprivileged writer.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
        var input = FuzzInput(data, size)
        let tree = Tree.shared
        let workingDirectory = tree.folders[input.int(in: 0...tree.folders.count - 1)]
        let ruleFolder = tree.folders[input.int(in: 0...tree.folders.count - 1)]
        let writer = input.int(in: 0...1) == 1 ? PathResolver.Writer(uid: 65534, groups: [65534]) : nil
        let bytes = input.rest().filter { $0 != 0 }
        let path = String(decoding: bytes, as: UTF8.self)
        guard !path.isEmpty else { return 0 }

        let resolved = PathResolver.resolve(path, from: workingDirectory, writer: writer)
        checkClean(resolved, of: path)
        checkClean(PathResolver.lexical(path, from: workingDirectory), of: path)
        let bound = path.utf8.count + (PathResolver.maxLinkHops + 1) * (tree.longestTarget + 2) + 2
        guard resolved.steps <= bound else { fatalError("\(resolved.steps) steps for \(path.utf8.count) bytes") }

        let real = realPath(path.hasPrefix("/") ? path : workingDirectory + "/" + path)
        if let real, !resolved.indeterminate, resolved.path != real {
            fatalError("\(path) from \(workingDirectory): resolved \(resolved.path), realpath \(real)")
        }
        let allowed = CommandMatcher.isPath(path, under: ruleFolder, workingDirectory: workingDirectory, writer: writer)
        if allowed {
            let denied = CommandMatcher.isPath(
                path, under: ruleFolder, workingDirectory: workingDirectory, writer: writer, liberal: true)
            guard denied else { fatalError("\(path) is allowed under \(ruleFolder) but a deny rule misses it") }
            // `PathResolver` writes `/` as no bytes at all.
            if let real, let folder = realPath(ruleFolder),
                !PathResolver.isInside(Array(real.utf8), folder == "/" ? [] : Array(folder.utf8))
            {
                fatalError("\(path) from \(workingDirectory) is allowed under \(ruleFolder) but is \(real)")
            }
        }
        return 0
    }

    func checkClean(_ resolution: PathResolver.Resolution, of path: String) {
        guard resolution.bytes.isEmpty || resolution.bytes.first == UInt8(ascii: "/") else {
            fatalError("\(path) resolved to a relative \(resolution.path)")
        }
        for component in resolution.bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            .dropFirst()
        where component.isEmpty || component.elementsEqual([0x2E]) || component.elementsEqual([0x2E, 0x2E]) {
            fatalError("\(path) resolved to \(resolution.path), which has an empty, . or .. component")
        }
    }

    func realPath(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// The fixed tree the paths are walked in, under a fresh folder of /tmp removed at exit.
    final class Tree: Sendable {
        static let shared = Tree()

        let root: String
        let folders: [String]
        let longestTarget: Int
        private let links: [String]

        private init() {
            var template = Array("/tmp/runvoy-fuzz-path-XXXXXX".utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                fatalError("cannot create the tree's folder: errno \(errno)")
            }
            let root = String(cString: made)
            self.root = root
            let links: [(String, String)] = [
                ("up", ".."), ("a/across", "../b"), ("a/self", "."), ("abs", root + "/a/b"), ("dangling", "nope/x"),
                ("loop", "loop"), ("chain1", "chain2"), ("chain2", "a"), ("b/deep", "../a/b/../../c"),
                ("c/out", "/etc"), ("c/root", "/"), ("file-link", "a/file"), ("a/b/far", "../../../.."),
            ]
            for folder in ["a", "a/b", "b", "c"] { mkdir(root + "/" + folder, 0o755) }
            close(open(root + "/a/file", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644))
            for (name, target) in links { symlink(target, root + "/" + name) }
            self.links = links.map(\.0)
            folders = [root, root + "/a", root + "/a/b", root + "/b", root + "/c", root + "/abs", "/"]
            longestTarget = links.map { $0.1.utf8.count }.max() ?? 0
            atexit { Tree.removeAll() }
        }

        private static func removeAll() {
            let root = shared.root
            for link in shared.links { unlink(root + "/" + link) }
            unlink(root + "/a/file")
            for folder in ["a/b", "a", "b", "c", ""] { rmdir(root + "/" + folder) }
        }
    }

    @main enum FuzzPathMain {
        static func main() { FuzzDriver.run({ data, size in fuzz(data!, size) }, seeds: Seeds.all) }
    }
#else
    @main enum FuzzPathMain {
        static func main() { fatalError("FuzzPath needs a debug build (scripts/fuzz), where @testable import works") }
    }
#endif
