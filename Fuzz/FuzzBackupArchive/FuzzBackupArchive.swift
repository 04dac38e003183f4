import FuzzSupport
import Glibc
import RunvoyKit
import RunvoyStore

/// `runvoyd --restore` on any bytes as the archive (`BackupRestore.restore`: the tar reader, the list of members a
/// backup may hold, the manifest and its digest, the history and the stored output it restores). An archive can
/// come from anywhere an administrator kept it. Checks, besides "no crash":
/// - a refused restore leaves nothing behind (docs/ARCHITECTURE.md: "any failure removes it"): next to the archive
///   there is no target and no work folder, so no member was written beside them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let folder = RestoreFolder.shared
    folder.clear()
    let archive = folder.path + "/archive.tar"
    guard folder.write(archive, UnsafeRawBufferPointer(start: data, count: size)) else {
        fatalError("cannot write \(archive)")
    }
    do {
        _ = try BackupRestore.restore(archive: archive, into: folder.path + "/state") { _ in nil }
    } catch {
        let left = FileSystem.entries(folder.path).sorted()
        guard left == ["archive.tar"] else { fatalError("a refused restore (\(error)) left \(left) behind") }
    }
    return 0
}

/// A folder per fuzzing process holding the archive and what the restore makes next to it, emptied before
/// every input.
final class RestoreFolder: @unchecked Sendable {
    static let shared = RestoreFolder()

    let path: String

    private init() {
        var template = Array("/tmp/runvoy-fuzz-restore-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp: \(String(cString: strerror(errno)))") }
        path = String(cString: made)
        atexit {
            RestoreFolder.shared.clear()
            rmdir(RestoreFolder.shared.path)
        }
    }

    func write(_ file: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return bytes.isEmpty || Glibc.write(fd, bytes.baseAddress!, bytes.count) == bytes.count
    }

    func clear() { Self.removeContents(path) }

    private static func removeContents(_ folder: String) {
        for name in FileSystem.entries(folder) {
            let child = folder + "/" + name
            var info = stat()
            if lstat(child, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR {
                removeContents(child)
                rmdir(child)
            } else {
                unlink(child)
            }
        }
    }
}

@main enum FuzzBackupArchiveMain {
    static func main() { FuzzDriver.run({ data, size in fuzz(data!, size) }, seeds: Seeds.all) }
}
