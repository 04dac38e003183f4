import ArgumentParser
import Glibc
import RunvoyKit

/// `runvoyctl backup --output FILE`: an archive of runvoyd's state, streamed from the daemon.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Save the execution history, stored output and sealed secrets to an archive (administrators).",
        discussion: """
            The daemon takes a consistent snapshot while executions go on (those still running are in it with \
            their output so far, and become `lost` when it is restored) and streams it as a tar archive with a \
            manifest of SHA-256 checksums. FILE is created new, mode 0600, and appears only once the whole \
            archive has arrived. The secrets stay sealed: the master key is in the archive only with \
            --include-key, which is audited as a critical event. Restore with \
            `runvoyd --restore FILE --state-directory DIR`. Every backup is audited.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        name: [.short, .long],
        help: ArgumentHelp("The archive to create (it must not exist), or - for standard output.", valueName: "file"))
    var output: String

    @Flag(
        name: .long,
        help: "Put the secrets master key in the archive: whoever reads the archive can then read every secret.")
    var includeKey = false

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    func run() throws {
        var file: ArchiveFile
        do throws(ClientError) {
            file = try ArchiveFile(output)
        } catch {
            complain(error.description)
            throw ExitCode(CtlExit.failure)
        }
        let result: BackupResult
        do throws(ClientError) {
            let client = try RunvoyClient(socketPath: global.socketPath)
            result = try client.stream(
                .backup, params: BackupParams(includeKey: includeKey ? true : nil), result: BackupResult.self
            ) { payload in
                let event = try Frame.decode(BackupDataEvent.self, from: payload)
                guard event.event == "backup_data", let bytes = Base64.decode(event.data) else {
                    throw ClientError(.protocolViolation, "a backup event without valid data")
                }
                try file.write(bytes)
            }
            guard result.bytes == file.written else {
                throw ClientError(
                    .protocolViolation, "runvoyd announced \(result.bytes) bytes but sent \(file.written)")
            }
            try file.commit()
        } catch {
            file.abandon()
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
        if json && output != "-" {
            print(try HistoryFormat.json(result))
        } else {
            complain(
                "wrote \(output == "-" ? "the archive" : output): \(result.bytes) bytes, \(result.executions) executions"
                    + (result.runningExecutions > 0 ? " (\(result.runningExecutions) running)" : "")
                    + ", \(result.files) files\(result.includesKey ? ", WITH the master key" : ""); sha256 \(result.sha256)"
            )
        }
    }
}

/// The archive being received: a private temporary file renamed into place once complete, or standard output.
struct ArchiveFile {
    let path: String?
    let temporary: String?
    let fd: Int32
    private(set) var written: Int64 = 0

    init(_ output: String) throws(ClientError) {
        guard output != "-" else {
            path = nil
            temporary = nil
            fd = 1
            return
        }
        guard access(output, F_OK) != 0 else {
            throw ClientError(.io, "\(output) exists; give a new file name")
        }
        let slash = output.lastIndex(of: "/")
        let folder = slash.map { $0 == output.startIndex ? "/" : String(output[..<$0]) } ?? "."
        let name = slash.map { String(output[output.index(after: $0)...]) } ?? output
        // mkstemp creates the file 0600 whatever the umask.
        var template = Array((folder + "/." + name + ".partial-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard made >= 0 else {
            throw ClientError(.io, "cannot create a file in \(folder): \(SystemError.text())")
        }
        path = output
        temporary = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        fd = made
    }

    mutating func write(_ bytes: [UInt8]) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                SystemCall.retrying { Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            }
            if n < 0 {
                throw ClientError(.io, "cannot write \(path ?? "standard output"): \(SystemError.text())")
            }
            offset += n
        }
        written += Int64(bytes.count)
    }

    /// Makes the archive durable and gives it its name.
    func commit() throws(ClientError) {
        guard let path, let temporary else { return }
        guard fsync(fd) == 0, close(fd) == 0 else {
            throw ClientError(.io, "cannot write \(path): \(SystemError.text())")
        }
        guard link(temporary, path) == 0 else {
            throw ClientError(.io, "cannot create \(path): \(SystemError.text())")
        }
        unlink(temporary)
    }

    /// Removes what was written of an archive that did not arrive whole.
    func abandon() {
        guard let temporary else { return }
        close(fd)
        unlink(temporary)
    }
}
