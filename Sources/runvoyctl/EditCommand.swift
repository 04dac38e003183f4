import ArgumentParser
import Glibc
import RunvoyKit

/// `runvoyctl edit -e EXECUTOR PATH`: what sudoedit does, through the daemon and audited. The daemon reads the file
/// as the executor's user; runvoyctl puts it in a private temporary copy (mode 0600, in `$TMPDIR`) as the calling
/// user, runs `$VISUAL` or `$EDITOR` (else `vi`) on it, and sends the result back only if it changed; the daemon
/// writes it as the executor's user, atomically, and refuses if the file changed in between.
struct EditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Edit a file as an executor's user (like sudoedit), audited.",
        discussion: """
            The executor's `editable` paths decide which files may be edited. The editor ($VISUAL, else $EDITOR, \
            else vi) runs as you on a private copy; the daemon writes the new content back as the executor's user, \
            atomically, and refuses (conflict) if the file changed meanwhile, keeping your copy. The history keeps \
            the hashes before and after and the diff (`runvoyctl status ID`, `runvoyctl logs ID`).
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        name: [.short, .customLong("executor")],
        help: ArgumentHelp(
            "The executor whose user reads and writes the file (default: the default executor).",
            valueName: "name"))
    var executor: String?

    @Argument(help: ArgumentHelp("The file (relative paths from the current directory).", valueName: "path"))
    var path: String

    func run() throws {
        let opened = try call(.editOpen, EditOpenParams(executor: executor, path: absolute(path)), EditOpenResult.self)
        guard let original = Base64.decode(opened.content) else {
            complain("the daemon sent content that is not base64")
            throw ExitCode(CtlExit.failure)
        }
        let copy = try TemporaryCopy(original, name: opened.path)
        try copy.edit()
        let edited = try copy.read()
        let params = EditSaveParams(
            token: opened.token, content: edited == original ? nil : Base64.encode(edited),
            baseSha256: opened.sha256)
        let saved = try call(.editSave, params, EditSaveResult.self, keeping: edited == original ? nil : copy)
        copy.remove()
        if saved.changed {
            printLine(
                "\(saved.path) saved (sha256 \(saved.sha256Before) -> \(saved.sha256After)); record \(saved.executionId)"
            )
        } else {
            printLine("\(saved.path) unchanged; nothing written; record \(saved.executionId)")
        }
    }

    /// One request on a connection of its own (the editor may stay open past the idle timeout). On failure, says
    /// where the edited copy is kept, if `keeping` one.
    private func call<P: Codable & Sendable, R: Codable & Sendable>(
        _ method: Method, _ params: P, _ result: R.Type, keeping copy: TemporaryCopy? = nil
    ) throws -> R {
        do {
            let client = try RunvoyClient(socketPath: global.socketPath)
            return try client.call(method, params: params, result: result)
        } catch {
            complain(error.description)
            if let copy { complain("your edited copy is kept in \(copy.path)") }
            throw ExitCode(CtlExit.code(for: error))
        }
    }

    private func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let directory = String(cString: buffer)
        return (directory == "/" ? "" : directory) + "/" + path
    }
}

/// The caller's private copy of the file: created 0600 with `mkstemps` in `$TMPDIR` (else /tmp), keeping the file's
/// extension so that editors recognise its type.
struct TemporaryCopy {
    let path: String

    init(_ content: [UInt8], name: String) throws {
        let base = name.split(separator: "/").last.map(String.init) ?? "file"
        let safe = String(base.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" ? $0 : "_" })
        let suffix = "-" + String(safe.suffix(64))
        let directory = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((directory + "/runvoy-edit-XXXXXX" + suffix).utf8CString)
        let fd = mkstemps(&template, Int32(suffix.utf8.count))
        guard fd >= 0 else {
            complain("cannot create a temporary file in \(directory): \(String(cString: strerror(errno)))")
            throw ExitCode(CtlExit.failure)
        }
        path = String(cString: template)
        defer { close(fd) }
        var written = 0
        while written < content.count {
            let count = content[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard count > 0 else {
                unlink(path)
                complain("cannot write \(path): \(String(cString: strerror(errno)))")
                throw ExitCode(CtlExit.failure)
            }
            written += count
        }
    }

    /// Runs the editor on the copy and waits for it; a failed editor saves nothing.
    func edit() throws {
        var editor = "vi"
        for name in ["EDITOR", "VISUAL"] {
            if let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty { editor = value }
        }
        // Through the shell, as sudoedit and git do, so that an editor with arguments (`code -w`) works.
        let argv = ["/bin/sh", "-c", editor + " \"$1\"", "sh", path]
        var pid: pid_t = 0
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, &cArgs, environ)
        guard spawned == 0 else {
            remove()
            complain("cannot run the editor: \(String(cString: strerror(spawned)))")
            throw ExitCode(CtlExit.failure)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7F == 0
        guard exited && (status >> 8) & 0xFF == 0 else {
            remove()
            complain("the editor (\(editor)) failed; nothing was saved")
            throw ExitCode(CtlExit.failure)
        }
    }

    func read() throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            complain("cannot read \(path) back: \(String(cString: strerror(errno)))")
            throw ExitCode(CtlExit.failure)
        }
        defer { close(fd) }
        var content: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                complain("cannot read \(path) back: \(String(cString: strerror(errno)))")
                throw ExitCode(CtlExit.failure)
            }
            if count == 0 { return content }
            content += chunk[..<count]
        }
    }

    func remove() { unlink(path) }
}
