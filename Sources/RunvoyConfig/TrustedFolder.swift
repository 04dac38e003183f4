import Foundation
import Glibc

/// A folder of files the daemon trusts as its own (see ``ConfigLoader/loadPlaybooks(beside:into:)``): it and each
/// file read from it belong to the daemon's user, are writable by no one else and are not symbolic links. Files are
/// opened relative to the folder's descriptor without following links, so what was checked is what is read.
struct TrustedFolder {
    let fd: Int32
    /// The entries' names, sorted.
    let names: [String]

    /// The folder at `path`; nil without a report when it does not exist, nil with one when it may not be used.
    /// It is opened without following a link and judged, and listed, by that descriptor.
    static func open(_ path: String, report: (String) -> Void) -> TrustedFolder? {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            switch errno {
            case ENOENT: break
            // O_DIRECTORY makes a link ENOTDIR, O_NOFOLLOW alone ELOOP: either way it is not followed.
            case ELOOP,
                ENOTDIR where isLink(path):
                report("is a symbolic link; the playbooks folder must be a real directory")
            case ENOTDIR: report("is not a directory")
            default: report("cannot open the folder: \(String(cString: strerror(errno)))")
            }
            return nil
        }
        var info = stat()
        let problem =
            fstat(fd, &info) != 0
            ? "cannot read the folder's status: \(String(cString: strerror(errno)))"
            : ownership(info, kind: "folder", path: path)
        guard problem == nil, let names = list(fd) else {
            report(problem ?? "cannot list the folder: \(String(cString: strerror(errno)))")
            close(fd)
            return nil
        }
        return TrustedFolder(fd: fd, names: names.sorted())
    }

    private static func isLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }

    /// The names in the directory `fd` (without `.` and `..`), read through a duplicate of it.
    private static func list(_ fd: Int32) -> [String]? {
        let copy = dup(fd)
        guard copy >= 0 else { return nil }
        guard let stream = fdopendir(copy) else {
            close(copy)
            return nil
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The text of the regular file `name`, at most `limit` bytes of UTF-8; nil (reported) otherwise.
    func read(_ name: String, limit: Int, report: (String) -> Void) -> String? {
        let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else {
            report(errno == ELOOP ? "is a symbolic link; refused" : "cannot open: \(String(cString: strerror(errno)))")
            return nil
        }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            report("is not a regular file")
            return nil
        }
        if let problem = Self.ownership(info, kind: "file", path: name) {
            report(problem)
            return nil
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= limit {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(file, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                report("cannot read: \(String(cString: strerror(errno)))")
                return nil
            }
            if count == 0 { break }
            bytes += buffer[..<count]
        }
        guard bytes.count <= limit else {
            report("is larger than \(limit) bytes")
            return nil
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            report("is not UTF-8 text")
            return nil
        }
        return text
    }

    /// Why a folder or file with this status may not be trusted: another owner, or group or other write bits.
    static func ownership(_ info: stat, kind: String, path: String) -> String? {
        let mode = String(info.st_mode & 0o7777, radix: 8)
        if info.st_uid != geteuid() {
            return
                "the \(kind) belongs to uid \(info.st_uid), not \(geteuid()); fix it with: chown \(geteuid()) \(path)"
        }
        if info.st_mode & 0o022 != 0 {
            return "the \(kind) is writable by others (mode \(mode)); fix it with: chmod go-w \(path)"
        }
        return nil
    }
}
