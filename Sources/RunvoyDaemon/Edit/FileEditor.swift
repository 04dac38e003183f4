import CRunvoyPosix
import Crypto
import Glibc
import RunvoyKit

/// The file operations of `runvoyctl edit`, each done as the executor's user (its filesystem uid, gid and groups,
/// on the calling thread for that call alone: see `runvoy_edit.c`), never as root: the kernel checks what that
/// user may read, create and rename. No symbolic link is followed: not on the way from the `editable` entry to the
/// file (its directory is opened with openat2 RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH, so a directory swapped for a
/// link after the daemon's path checks is refused, not followed), not in its last component; only a regular file
/// is read. Writing back is atomic: a new file beside the old one (created exclusively, with the old
/// one's owner, mode and extended attributes — its ACL above all —, fsynced) is renamed over it, unless the old
/// one changed in the meantime. An attribute that cannot be copied refuses the save (the old file is kept):
/// the new file must not be more readable, or differently labelled, than the old one.
struct FileEditor: Sendable {
    /// The identity to act as; nil for the daemon's own (an unprivileged daemon can only edit as itself).
    let identity: SpawnRequest.Identity?
    /// The `editable` entry (resolved) the file is beneath: every operation opens the file's directory from it,
    /// no symbolic link followed on the way (`runvoy_edit_place`).
    var base = "/"
    /// For tests: an extended attribute to treat as one the kernel refused to copy.
    var refuseAttribute: String? = nil

    /// A file as read: its bytes, their SHA-256, and what `write` checks to know it has not changed since.
    struct Snapshot: Sendable {
        var content: [UInt8]
        var sha256: String
        var mode: Int
        var owner: (uid: uid_t, gid: gid_t)
        var info: stat
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        for byte in SHA256.hash(data: bytes) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// Reads the regular file at `path` (absolute, beneath `base`), at most `maxBytes`.
    func read(_ path: String, maxBytes: Int) throws(RunvoyError) -> Snapshot {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        var length = 0
        var info = stat()
        let rc = try withPlace(path) { identity, place in
            buffer.withUnsafeMutableBufferPointer { bytes in
                runvoy_edit_read(identity, place, bytes.baseAddress, maxBytes, &length, &info)
            }
        }
        if rc != 0 { throw Self.failure(rc, errno: errno, path: path, maxBytes: maxBytes) }
        buffer.removeSubrange(length...)
        return Snapshot(
            content: buffer, sha256: Self.sha256(buffer), mode: Int(info.st_mode & 0o7777),
            owner: (info.st_uid, info.st_gid), info: info)
    }

    /// Replaces the file at `path` with `content` if it is still the file `snapshot` read; `beforeRename` runs
    /// once the new file is written and fsynced, before it replaces the old one, and throwing there leaves the old
    /// one in place (the audit record, fail-closed).
    func write(
        _ path: String, content: [UInt8], over snapshot: Snapshot, beforeRename: () async throws -> Void
    ) async throws {
        let tempName = try prepare(path, content: content, over: snapshot)
        do {
            try await beforeRename()
        } catch {
            _ = try? withPlace(path) { identity, place in runvoy_edit_discard(identity, place, tempName) }
            throw error
        }
        var expected = snapshot.info
        let committed = try withPlace(path) { identity, place in
            runvoy_edit_commit(identity, place, tempName, &expected)
        }
        if committed != 0 { throw Self.failure(committed, errno: errno, path: path, maxBytes: 0) }
    }

    /// Writes the new file beside the old one (`runvoy_edit_prepare`); returns its name.
    private func prepare(_ path: String, content: [UInt8], over snapshot: Snapshot) throws(RunvoyError) -> String {
        var temp = [CChar](repeating: 0, count: 256)
        var failed = [CChar](repeating: 0, count: 256)
        var original = snapshot.info
        let refuse = refuseAttribute
        let prepared = try withPlace(path) { identity, place in
            content.withUnsafeBufferPointer { bytes in
                temp.withUnsafeMutableBufferPointer { tempBuffer in
                    failed.withUnsafeMutableBufferPointer { failedBuffer in
                        withUnsafePointer(to: &original) { originalPointer in
                            (refuse ?? "").withCString { refusePointer in
                                var file = runvoy_edit_new_file(
                                    content: bytes.baseAddress, length: bytes.count, mode: mode_t(snapshot.mode),
                                    owner_uid: snapshot.owner.uid, owner_gid: snapshot.owner.gid,
                                    original: originalPointer, refuse_attribute: refuse == nil ? nil : refusePointer,
                                    temp_name: tempBuffer.baseAddress, temp_capacity: tempBuffer.count,
                                    failed_attribute: failedBuffer.baseAddress, failed_capacity: failedBuffer.count)
                                return runvoy_edit_prepare(identity, place, &file)
                            }
                        }
                    }
                }
            }
        }
        if prepared != 0 {
            let attribute = String(cString: failed)
            throw Self.failure(prepared, errno: errno, path: path, maxBytes: 0, attribute: attribute)
        }
        return String(cString: temp)
    }

    /// `/a/b/c` → (`/a/b`, `c`); `/c` → (`/`, `c`).
    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    /// `path`'s directory relative to `base` (`""` for `base` itself), and its name; nil when it is not beneath.
    static func place(_ path: String, base: String) -> (directory: String, name: String)? {
        let (directory, name) = split(path)
        if directory == base { return ("", name) }
        let prefix = base == "/" ? "/" : base + "/"
        guard directory.hasPrefix(prefix) else { return nil }
        return (String(directory.dropFirst(prefix.count)), name)
    }

    /// Runs `body` with the identity to act as and the place of `path` beneath `base`.
    private func withPlace(
        _ path: String,
        _ body: (UnsafePointer<runvoy_edit_identity>, UnsafePointer<runvoy_edit_place>) -> Int32
    ) throws(RunvoyError) -> Int32 {
        guard let (directory, name) = Self.place(path, base: base) else {
            throw RunvoyError(.invalidArgument, "\(path) is not beneath \(base)")
        }
        let groups = identity?.groups ?? []
        return groups.withUnsafeBufferPointer { groupBuffer in
            var value = runvoy_edit_identity(
                switch_identity: identity == nil ? 0 : 1, uid: identity?.uid ?? 0, gid: identity?.gid ?? 0,
                groups: groupBuffer.baseAddress, ngroups: groupBuffer.count)
            return base.withCString { basePointer in
                directory.withCString { directoryPointer in
                    name.withCString { namePointer in
                        var place = runvoy_edit_place(base: basePointer, directory: directoryPointer, name: namePointer)
                        return body(&value, &place)
                    }
                }
            }
        }
    }

    /// What a failed operation tells the caller (the path is the caller's own request; no secret is in it).
    static func failure(
        _ rc: Int32, errno code: Int32, path: String, maxBytes: Int, attribute: String = ""
    ) -> RunvoyError {
        switch rc {
        case Int32(RUNVOY_EDIT_ATTRIBUTE):
            return RunvoyError(
                .permissionDenied,
                "\(path) has the extended attribute '\(attribute)', which the executor's user cannot give the new file (\(String(cString: strerror(code)))); nothing was written"
            )
        case Int32(RUNVOY_EDIT_NOT_REGULAR):
            return RunvoyError(.invalidArgument, "\(path) is not a regular file")
        case Int32(RUNVOY_EDIT_TOO_LARGE):
            return RunvoyError(.invalidArgument, "\(path) is larger than limits.max_edit_bytes (\(maxBytes) bytes)")
        case Int32(RUNVOY_EDIT_CONFLICT):
            return RunvoyError(.conflict, "\(path) changed while it was being saved; nothing was written")
        case Int32(RUNVOY_EDIT_OWNER):
            return RunvoyError(
                .permissionDenied,
                "\(path) belongs to another user or group than the executor's: replacing it would change its owner")
        default:
            switch code {
            case ELOOP:
                return RunvoyError(
                    .invalidArgument,
                    "\(path) is a symbolic link, or a link was put on the way to it since it was checked; edit the file it names"
                )
            case ENOSYS:
                return RunvoyError(.invalidState, "this kernel has no openat2 (Linux 5.6 or later edits files)")
            case ENOENT: return RunvoyError(.invalidArgument, "\(path) does not exist")
            case EACCES, EPERM:
                return RunvoyError(.permissionDenied, "the executor's user may not do this to \(path)")
            default: return RunvoyError(.invalidState, "\(path): \(String(cString: strerror(code)))")
            }
        }
    }
}
