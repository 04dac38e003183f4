import Glibc
import RunvoyKit

/// The state directory (history, stored output, the secrets store and its key) and the secrets runtime directory
/// (secret files of running commands) are the daemon's alone.
///
/// At start the state directory is made 0700 and the history's files 0600, whatever an earlier version or an
/// administrator left; a state directory that is a symbolic link or belongs to another user stops the daemon.
/// The secrets runtime directory and each folder above it must belong to root or the daemon's user and be
/// writable by no one else (a world-writable folder with the sticky bit, such as /tmp, is fine when the next
/// folder down is root's or the daemon's), or the daemon does not start. `--check-config` reports the same, changing
/// nothing.
enum PrivateDirectories {
    /// A reason not to start, naming the path and the fix.
    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    /// The history's files in the state directory (the secrets key file is checked where it is loaded).
    static let stateFiles = ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"]

    /// Checks the state directory and, with `fix`, makes it 0700 and its files 0600 (the `output` folder 0700).
    /// Returns what was changed (or, without `fix`, what would be), for the log; throws when the directory
    /// cannot be trusted. A directory that does not exist yet is fine (it is created 0700).
    static func secureStateDirectory(_ path: String, fix: Bool) throws(Refusal) -> [String] {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return [] }
            throw Refusal(
                description: "cannot examine the state directory \(path): \(SystemError.text())")
        }
        let uid = geteuid()
        guard info.st_mode & S_IFMT != S_IFLNK else {
            throw Refusal(
                description:
                    "the state directory \(path) is a symbolic link; runvoyd does not follow it. Set state_directory to the real directory, or replace the link with a directory owned by uid \(uid) with mode 0700"
            )
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw Refusal(description: "the state directory \(path) is not a directory")
        }
        guard info.st_uid == uid else {
            throw Refusal(
                description:
                    "the state directory \(path) belongs to uid \(info.st_uid), not to runvoyd's uid \(uid), so that user can read and change the history and the secrets. Fix it with: chown -R \(uid) \(path) && chmod 700 \(path)"
            )
        }
        var changes: [String] = []
        func tighten(_ target: String, _ current: stat, to mode: mode_t) throws(Refusal) {
            guard current.st_mode & 0o077 != 0 else { return }
            let was = String(current.st_mode & 0o7777, radix: 8)
            changes.append("\(target) was mode \(was); \(fix ? "now" : "runvoyd makes it") \(String(mode, radix: 8))")
            if fix && chmod(target, mode) != 0 {
                throw Refusal(
                    description:
                        "cannot make \(target) mode \(String(mode, radix: 8)) (it is \(was), so others can read it): \(SystemError.text())"
                )
            }
        }
        try tighten(path, info, to: 0o700)
        for name in stateFiles + ["output"] {
            let file = path + "/" + name
            var entry = stat()
            guard lstat(file, &entry) == 0 else { continue }
            let kind = entry.st_mode & S_IFMT
            guard entry.st_uid == uid, kind == (name == "output" ? S_IFDIR : S_IFREG) else {
                throw Refusal(
                    description:
                        "\(file) is not a \(name == "output" ? "directory" : "regular file") owned by runvoyd's uid \(uid); remove it or fix it with: chown \(uid) \(file)"
                )
            }
            try tighten(file, entry, to: name == "output" ? 0o700 : 0o600)
        }
        return changes
    }

    /// Checks that no one but root and the daemon's user can replace `path` or a folder above it: each existing
    /// one must belong to one of them and be writable by no one else, except a sticky folder (such as /tmp)
    /// whose next folder down is root's or the daemon's. `path` itself, when it exists, must be a directory (not a link)
    /// of the daemon's user.
    static func checkOwnedPath(_ path: String, what: String) throws(Refusal) {
        let uid = geteuid()
        var prefixes: [String] = ["/"]
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            prefixes.append(current)
        }
        var infos: [stat] = []
        for prefix in prefixes {
            var info = stat()
            guard lstat(prefix, &info) == 0 else {
                // ENOTDIR: a folder above is not one, which the checks below name.
                if errno == ENOENT || errno == ENOTDIR { break }
                throw Refusal(
                    description: "cannot examine \(prefix), above \(what) \(path): \(SystemError.text())")
            }
            infos.append(info)
        }
        for (index, info) in infos.enumerated() {
            let prefix = prefixes[index]
            let isTarget = index == prefixes.count - 1
            let kind = info.st_mode & S_IFMT
            if kind == S_IFLNK {
                throw Refusal(
                    description:
                        "\(prefix) is a symbolic link, on the way to \(what) \(path); runvoyd does not follow links there. Use the real path"
                )
            }
            guard kind == S_IFDIR else {
                if isTarget { throw Refusal(description: "\(what) \(path) is not a directory") }
                throw Refusal(description: "\(prefix), on the way to \(what) \(path), is not a directory")
            }
            if isTarget {
                guard info.st_uid == uid else {
                    throw Refusal(
                        description:
                            "\(what) \(path) belongs to uid \(info.st_uid), not to runvoyd's uid \(uid), so that user can read and change what runvoyd keeps there. Remove it (runvoyd creates it) or fix it with: chown -R \(uid) \(path) && chmod 700 \(path)"
                    )
                }
                continue
            }
            guard info.st_uid == 0 || info.st_uid == uid else {
                throw Refusal(
                    description:
                        "\(prefix) belongs to uid \(info.st_uid), who could replace \(what) \(path) below it. Put \(what) under a directory owned by root, or fix it with: chown root \(prefix)"
                )
            }
            let othersWrite = info.st_mode & 0o022 != 0
            let sticky = info.st_mode & mode_t(S_ISVTX) != 0
            // A folder that does not exist yet is created by runvoyd (and checked again once it is).
            let nextIsOurs = index + 1 >= infos.count || infos[index + 1].st_uid == uid || infos[index + 1].st_uid == 0
            if othersWrite && !(sticky && nextIsOurs) {
                throw Refusal(
                    description:
                        "\(prefix) is writable by users other than its owner (mode \(String(info.st_mode & 0o7777, radix: 8))), so they could replace \(what) \(path) below it. Fix it with: chmod go-w \(prefix)"
                )
            }
        }
    }
}

extension PrivateDirectories {
    /// What `--check-config` says about the directories of `config`: problems that stop the daemon, and what
    /// it would tighten at start.
    static func report(stateDirectory: String, runtimeDirectory: String) -> (errors: [String], warnings: [String]) {
        var errors: [String] = []
        var warnings: [String] = []
        do throws(Refusal) {
            try checkOwnedPath(stateDirectory, what: "the state directory")
            warnings += try secureStateDirectory(stateDirectory, fix: false)
        } catch {
            errors.append(error.description)
        }
        do throws(Refusal) {
            try checkOwnedPath(runtimeDirectory, what: "the secrets runtime directory")
        } catch {
            errors.append(error.description)
        }
        return (errors, warnings)
    }
}
