import CRunvoyPosix
import Glibc

/// Resolves a path the way the kernel's path walk does, so policy decides on the file a command will open.
///
/// One component at a time from `/` (relative paths from a working directory): each name is looked up with
/// `fstatat(AT_SYMLINK_NOFOLLOW)` in the directory reached so far (held open with `O_PATH`); a symbolic link's
/// target is read and walked in its place (absolute targets from `/`); `..` goes to the parent of the directory
/// actually reached, after links, never by removing text. Once a name does not exist (or is not a directory
/// while more follows), the kernel's walk would stop: the remaining components are applied as written to what
/// was resolved, so a path a command is about to create is judged where it would be created.
///
/// Work and memory are linear in the length of the path (plus at most `maxLinkHops` link targets): the path is
/// read as bytes with a cursor, never split into arrays of components, and the result is built in one buffer.
/// Gives up (``Resolution/indeterminate``) where the daemon cannot know what the command's kernel would do:
/// more than `maxLinkHops` links (the kernel's ELOOP) or a link on procfs (`/proc/self`, `/proc/PID/cwd`,
/// `/dev/fd/N`), whose meaning depends on the process that opens it.
enum PathResolver {
    /// The kernel's limit on symbolic links followed in one lookup (MAXSYMLINKS).
    static let maxLinkHops = 40
    static let pathOnly = runvoy_o_path()

    /// Someone who must not be able to redirect the path between the check and the open: a caller's uid and
    /// every group it has.
    struct Writer: Sendable, Equatable {
        var uid: uid_t
        var groups: Set<gid_t>
    }

    struct Resolution: Sendable, Equatable {
        /// The absolute path without `.`, `..`, empty components or (in its existing part) links; empty for `/`.
        var bytes: [UInt8]
        /// Whether the walk gave up: too many links, or a procfs link (see ``PathResolver``).
        var indeterminate: Bool
        /// Whether some name was looked up in a directory the writer can change (see ``Writer/mayChange``).
        var changeable: Bool
        /// Components walked, including those of link targets: linear in the length of the path.
        var steps: Int

        var path: String { bytes.isEmpty ? "/" : String(decoding: bytes, as: UTF8.self) }

        /// Whether this path is `base` or below it (both as resolved, so `/a/bc` is not below `/a/b`).
        func isInside(_ base: Resolution) -> Bool {
            PathResolver.isInside(bytes, base.bytes)
        }
    }

    /// The path as the kernel would resolve it now; `writer` also records whether it could redirect it.
    static func resolve(_ path: String, from workingDirectory: String = "/", writer: Writer? = nil) -> Resolution {
        var path = path
        return path.withUTF8 { walk($0, from: workingDirectory, writer: writer, lexical: false) }
    }

    /// ``resolve(_:from:writer:)`` of a path given as bytes.
    static func resolve(bytes path: [UInt8], from workingDirectory: String = "/", writer: Writer? = nil) -> Resolution {
        path.withUnsafeBufferPointer { walk($0, from: workingDirectory, writer: writer, lexical: false) }
    }

    /// The path with `.`, `..` and empty components removed as text (`/a/b/../c` → `/a/c`), never above `/`.
    static func lexical(_ path: String, from workingDirectory: String = "/") -> Resolution {
        var path = path
        return path.withUTF8 { walk($0, from: workingDirectory, writer: nil, lexical: true) }
    }

    /// Walks `path` in place: its bytes are read where they are, never copied or split.
    private static func walk(
        _ path: UnsafeBufferPointer<UInt8>, from workingDirectory: String, writer: Writer?, lexical: Bool
    ) -> Resolution {
        var walk = Walk(writer: writer, lexical: lexical)
        defer { walk.release() }
        walk.push(path)
        if path.first != UInt8(ascii: "/") {
            // A stack: the last segment is walked first, so the working directory goes on top of a relative path.
            walk.push(copying: Array(workingDirectory.utf8))
        }
        walk.resolved.reserveCapacity(path.count + workingDirectory.utf8.count + 1)
        return walk.run()
    }

    static func isInside(_ path: [UInt8], _ base: [UInt8]) -> Bool {
        if base.isEmpty { return true }
        guard path.count >= base.count, path.starts(with: base) else { return false }
        return path.count == base.count || path[base.count] == UInt8(ascii: "/")
    }
}

extension PathResolver.Writer {
    /// Whether the writer can make `name` in `directory` point somewhere else: it owns the directory (and so can
    /// change its mode), or may write it through its group bits (its group, or any group or user when the
    /// directory has an ACL, whose mask those bits are) or its other bits — unless the directory is sticky and the
    /// entry exists and belongs to someone else, which then only its owner can rename or remove.
    func mayChange(directory: stat, directoryFD: Int32, entry: stat?) -> Bool {
        if directory.st_uid == uid { return true }
        let mode = directory.st_mode
        var writable = mode & 0o002 != 0
        if !writable, mode & 0o020 != 0 {
            writable = groups.contains(directory.st_gid) || Self.hasACL(directoryFD)
        }
        guard writable else { return false }
        if mode & 0o1000 != 0, let entry, entry.st_uid != uid { return false }
        return true
    }

    /// Whether the directory has an access ACL; fails closed (true) when that cannot be told.
    static func hasACL(_ fd: Int32) -> Bool {
        runvoy_has_access_acl(fd) != 0
    }
}

extension PathResolver {
    /// One walk. The path still to walk is a stack of byte buffers with a cursor each (the path, then each link
    /// target pushed over it); what is resolved so far is one buffer, `/a/b`, that `..` cuts back.
    fileprivate struct Walk {
        typealias Component = UnsafeBufferPointer<UInt8>

        struct Segment {
            var bytes: UnsafeBufferPointer<UInt8>
            var position = 0
        }

        var pending: [Segment] = []
        /// Buffers this walk allocated (the working directory, link targets), released at its end.
        var owned: [UnsafeMutableBufferPointer<UInt8>] = []
        var resolved: [UInt8] = []
        let writer: Writer?
        /// Whether the components so far exist; once not, the rest is applied as text.
        var exists: Bool
        var directory: Int32 = -1
        var directoryInfo = stat()
        var hops = 0
        var result = Resolution(bytes: [], indeterminate: false, changeable: false, steps: 0)
        /// The current name, NUL-terminated, for the system calls.
        var name: [CChar] = []

        init(writer: Writer?, lexical: Bool) {
            self.writer = writer
            exists = !lexical
        }

        mutating func push(_ bytes: UnsafeBufferPointer<UInt8>) {
            pending.append(Segment(bytes: bytes))
        }

        mutating func push(copying bytes: [UInt8]) {
            let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes.count)
            _ = buffer.initialize(from: bytes)
            owned.append(buffer)
            push(UnsafeBufferPointer(buffer))
        }

        mutating func release() {
            for buffer in owned { buffer.deallocate() }
            owned = []
            if directory >= 0 { close(directory) }
            directory = -1
        }

        mutating func run() -> Resolution {
            if exists { enterRoot() }
            while let component = nextComponent() {
                result.steps += 1
                step(component)
            }
            result.bytes = resolved
            return result
        }

        /// The next non-empty component of the innermost pending segment.
        mutating func nextComponent() -> Component? {
            let slash = UInt8(ascii: "/")
            while let last = pending.indices.last {
                let bytes = pending[last].bytes
                var start = pending[last].position
                while start < bytes.count, bytes[start] == slash { start += 1 }
                guard start < bytes.count else {
                    pending.removeLast()
                    continue
                }
                var end = start
                while end < bytes.count, bytes[end] != slash { end += 1 }
                pending[last].position = end
                return Component(rebasing: bytes[start..<end])
            }
            return nil
        }

        mutating func step(_ component: Component) {
            let dot = UInt8(ascii: ".")
            if component.count == 1, component.first == dot { return }
            if component.count == 2, component.allSatisfy({ $0 == dot }) {
                goUp()
                return
            }
            // A NUL would cut the name short in the system calls: no file has such a name.
            guard exists, !component.contains(0) else {
                if exists { stopExisting(appending: nil) }
                append(component)
                return
            }
            name.removeAll(keepingCapacity: true)
            for byte in component { name.append(CChar(bitPattern: byte)) }
            name.append(0)
            var entry = stat()
            let found = fstatat(directory, name, &entry, AT_SYMLINK_NOFOLLOW) == 0
            if let writer, !result.changeable,
                writer.mayChange(directory: directoryInfo, directoryFD: directory, entry: found ? entry : nil)
            {
                result.changeable = true
            }
            guard found else {
                stopExisting(appending: component)
                return
            }
            switch entry.st_mode & S_IFMT {
            case S_IFLNK: follow(component)
            case S_IFDIR: enter(component)
            default:
                append(component)
                // The kernel stops at a non-directory with more to come (ENOTDIR); the rest is applied as text.
                if !pending.isEmpty { stopExisting(appending: nil) }
            }
        }

        mutating func follow(_ component: Component) {
            hops += 1
            guard hops <= PathResolver.maxLinkHops, !isOnProcfs(), let target = readLink(), !target.isEmpty else {
                // An empty target is ENOENT to the kernel; the others are what this walk cannot know.
                if hops > PathResolver.maxLinkHops || isOnProcfs() { result.indeterminate = true }
                stopExisting(appending: component)
                return
            }
            if target.first == UInt8(ascii: "/") {
                resolved.removeAll(keepingCapacity: true)
                enterRoot()
            }
            push(copying: target)
        }

        mutating func enter(_ component: Component) {
            let next = openat(directory, name, PathResolver.pathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            append(component)
            guard next >= 0 else {
                stopExisting(appending: nil)
                return
            }
            replaceDirectory(next)
        }

        /// `..`: the parent of where the walk is (never above `/`).
        mutating func goUp() {
            guard let slash = resolved.lastIndex(of: UInt8(ascii: "/")) else { return }
            resolved.removeSubrange(slash...)
            guard exists else { return }
            let parent = openat(directory, "..", PathResolver.pathOnly | O_DIRECTORY | O_CLOEXEC)
            if parent >= 0 { replaceDirectory(parent) } else { stopExisting(appending: nil) }
        }

        mutating func append(_ component: Component) {
            resolved.append(UInt8(ascii: "/"))
            resolved.append(contentsOf: component)
        }

        mutating func stopExisting(appending component: Component?) {
            if let component { append(component) }
            exists = false
            if directory >= 0 { close(directory) }
            directory = -1
        }

        mutating func enterRoot() {
            let root = open("/", PathResolver.pathOnly | O_DIRECTORY | O_CLOEXEC)
            if root >= 0 {
                replaceDirectory(root)
            } else {
                result.indeterminate = true
                stopExisting(appending: nil)
            }
        }

        mutating func replaceDirectory(_ fd: Int32) {
            if directory >= 0 { close(directory) }
            directory = fd
            exists = true
            if writer != nil, fstat(fd, &directoryInfo) != 0 {
                // Unknown owner and mode: assume the writer can change it.
                directoryInfo.st_uid = writer?.uid ?? 0
            }
        }

        /// Whether the current directory is on procfs (fails closed: true when that cannot be told).
        func isOnProcfs() -> Bool {
            runvoy_is_procfs(directory) != 0
        }

        func readLink() -> [UInt8]? {
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = buffer.withUnsafeMutableBytes { raw in
                readlinkat(directory, name, raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
            }
            guard count >= 0, count < buffer.count else { return nil }
            return Array(buffer.prefix(count))
        }
    }
}
