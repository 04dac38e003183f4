import Glibc
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// What `edit_open` and `edit_save` both decide, the same way, under the request's configuration: whether the
/// caller may edit this path on this executor, which file it is, and who it is read and written as.
extension RequestContext {
    /// A file the caller may edit.
    struct EditTarget {
        var executor: ExecutorConfig
        /// Absolute, its directories resolved as the kernel walks them, its own name kept (never followed).
        var path: String
        var runAs: RunAsIdentity
        /// The `editable` entry (resolved) that admits it, or its directory when the entry is the file itself: the
        /// file's directory is opened from there, no link followed on the way.
        var base: String
        var editor: FileEditor { FileEditor(identity: runAs.identity, base: base) }
    }

    /// The file `path` names on `executorName` (nil: the default executor), or the refusal, audited as
    /// `request_denied`: the caller needs the `edit` permission, the executor's `allow`, and a path that one of
    /// its `editable` entries admits as `path_under` admits an argument — every reading of it inside, through no
    /// directory the caller can change.
    func editTarget(executor executorName: String?, path: String) throws -> EditTarget {
        try require(.edit)
        let name = executorName ?? config.defaultExecutorName
        var fields: [(String, String)] = [("EXECUTOR", name), ("PATH", String(path.prefix(1024)))]
        guard let executor = config.executor(named: name) else {
            throw denied(RunvoyError(.noSuchExecutor, "no executor named '\(name)'"), fields: fields)
        }
        let roles = Authorizer.roles(caller, config)
        guard
            roles.contains(.admin)
                || caller.userName.map({
                    executor.access.admits(userName: $0, groupNames: caller.groupNames, roles: roles)
                })
                    == true
        else {
            throw denied(
                RunvoyError(.permissionDenied, "user \(caller.displayName) may not use executor '\(name)'"),
                fields: fields)
        }
        if executor.needsApproval {
            // Fail closed: an edit would change what the executor's user reads, or the script an approved request
            // runs, on one person's word; edits are not sent through approval (review of approvals, F6).
            throw denied(
                RunvoyError(
                    .permissionDenied,
                    "executor '\(name)' needs approval for its commands, so edits of its files would need approval too; edit is not supported on such an executor"
                ), fields: fields)
        }
        if !HookRunner.hooks(.preExec, config: config, executor: executor).isEmpty {
            // Fail closed as for approval: a `pre_exec` hook may refuse every command (a change window), and an
            // edit writes as the executor's user without asking it (review of hooks, H1).
            throw denied(
                RunvoyError(
                    .permissionDenied,
                    "executor '\(name)' has pre_exec hooks, which edits would not run; edit is not supported on such an executor"
                ), fields: fields)
        }
        let (resolved, base) = try editablePath(path, executor, &fields)
        let runAs: RunAsIdentity
        do {
            runAs = try RunAsIdentity.resolve(executor)
        } catch {
            throw denied(error, fields: fields)
        }
        if let directory = Self.redirectableDirectory(of: resolved, owner: runAs.identity?.uid ?? getuid()) {
            throw denied(
                RunvoyError(
                    .permissionDenied,
                    "\(directory) could be changed by an account other than root or executor '\(executor.name)''s user, so runvoyd does not edit through it"
                ), fields: fields)
        }
        return EditTarget(executor: executor, path: resolved, runAs: runAs, base: base)
    }

    /// The first directory on the way to `path` that an account other than root and `owner` could rename or
    /// replace (owned by another, writable by group or others, or not a directory), nil when none: the file is
    /// opened by its path after the check, so every directory to it must stay put meanwhile (review of issue 16: a
    /// service user's folder under `editable`, swapped for a link, sent a root executor's read elsewhere).
    /// Root-owned sticky folders (`/tmp`) may be passed through: others cannot rename what they do not own there.
    static func redirectableDirectory(of path: String, owner: uid_t) -> String? {
        var prefix = ""
        let components = path.split(separator: "/").dropLast()
        for component in [Substring("")] + components {
            prefix += component.isEmpty ? "/" : (prefix == "/" ? "" : "/") + component
            var info = stat()
            guard lstat(prefix, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return prefix }
            let owned = info.st_uid == 0 || info.st_uid == owner
            let writable = info.st_mode & 0o022 != 0
            let sticky = info.st_mode & S_ISVTX != 0 && info.st_uid == 0
            guard owned, !writable || sticky else { return prefix }
        }
        return nil
    }

    /// `path` resolved (see `EditTarget.path`) when `executor.editable` admits it, and the base to open it from.
    private func editablePath(
        _ path: String, _ executor: ExecutorConfig, _ fields: inout [(String, String)]
    ) throws -> (path: String, base: String) {
        let directory = executor.workingDirectory
        let absolute = path.hasPrefix("/") ? path : directory + "/" + path
        let last = absolute.split(separator: "/", omittingEmptySubsequences: false).last ?? ""
        guard !path.isEmpty, !last.isEmpty, last != ".", last != "..", !path.utf8.contains(0) else {
            throw denied(RunvoyError(.invalidArgument, "'\(path)' does not name a file"), fields: fields)
        }
        let resolved = CommandMatcher.identity(absolute)
        fields[1] = ("PATH", String(resolved.prefix(1024)))
        let writer = caller.pathWriter
        // Each entry is judged once: the file system may change between two readings of one (a lazy
        // `compactMap(...).first` judged twice and force-unwrapped the second answer, which crashed runvoyd).
        var admitting: [UInt8]?
        for base in executor.editable {
            let inside = PathResolver.resolve(base).bytes
            if CommandMatcher.isPath(path, under: base, workingDirectory: directory, writer: writer),
                PathResolver.isInside(Array(resolved.utf8), inside)
            {
                admitting = inside
                break
            }
        }
        guard let admitting else {
            var reason = "executor '\(executor.name)' does not let you edit \(resolved)"
            reason += executor.editable.isEmpty ? " (it has no editable paths)" : ""
            let reading = PathResolver.resolve(path, from: directory, writer: writer)
            if reading.changeable || reading.indeterminate {
                reason += "; the path passes through a directory you can change or a link runvoyd cannot follow"
            }
            throw denied(RunvoyError(.permissionDenied, reason), fields: fields)
        }
        // Only the folders of the real path are checked (`redirectableDirectory`): a link on the way, kept in a
        // folder another account owns, would follow that account (review of be65455, finding A).
        let written = PathResolver.lexical(absolute).path
        guard written == resolved else {
            throw denied(
                RunvoyError(
                    .permissionDenied,
                    "\(written) passes through a symbolic link; runvoyd edits a file only by its real path"),
                fields: fields)
        }
        let base = String(decoding: admitting, as: UTF8.self)
        return (resolved, base == resolved ? FileEditor.split(resolved).directory : base)
    }

    /// The audit fields of an edit.
    func editFields(_ target: EditTarget) -> [(String, String)] {
        callerFields + [
            ("EXECUTOR", target.executor.name), ("RUN_AS", target.runAs.label), ("PATH", target.path),
        ]
    }

    /// The values of the secrets `executor` injects, to take out of an edit's diff (a value that cannot be read
    /// is left out: the file holds what it holds, and the diff is only what the history keeps of it).
    func editRedaction(_ executor: ExecutorConfig) -> RedactionSet? {
        let names = executor.secretNames.sorted()
        guard !names.isEmpty else { return nil }
        let secrets = names.compactMap { name -> (name: String, value: [UInt8])? in
            guard let value = try? executions.secrets.value(name) else { return nil }
            return (name, value)
        }
        return RedactionSet(secrets: secrets)
    }
}
