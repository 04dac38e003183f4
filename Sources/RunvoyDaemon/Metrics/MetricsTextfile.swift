import Glibc
import Logging
import RunvoyKit
import ServiceLifecycle

/// Writes the exposition for node-exporter's textfile collector every `interval`: to a new temporary file in the
/// same directory (a hidden name the collector skips: it reads only `*.prom`), then renamed over `path`, so a reader sees the
/// old file or the new one, never part of one. The file is removed at shutdown, so stale figures do not outlive
/// the daemon.
struct MetricsTextfile: Service {
    let path: String
    let interval: Duration
    let logger: Logger
    var exposition: @Sendable () -> [UInt8] = { DaemonMetrics.shared.exposition() }

    func run() async throws {
        // The folder is opened once: later changes to the path (a component swapped for a symbolic link by whoever
        // may write a parent) do not move where the daemon, as root, writes and renames.
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else {
            logger.warning(
                "cannot open the metrics textfile's folder; no textfile is written",
                metadata: ["path": "\(folder)", "error": "\(SystemError.text())"])
            return
        }
        defer { close(directory) }
        var failing = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do throws(SystemError) {
                try write(in: directory, name: name)
                if failing { logger.notice("metrics textfile written again", metadata: ["path": "\(path)"]) }
                failing = false
            } catch {
                if !failing {
                    logger.warning(
                        "cannot write the metrics textfile", metadata: ["path": "\(path)", "error": "\(error)"])
                }
                failing = true
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        unlinkat(directory, name, 0)
    }

    /// Writes the exposition to a new file of a random name in `directory` (mode 0644: node-exporter does not run
    /// as root) and renames it over `name`. The temporary file is made with `O_EXCL` and `O_NOFOLLOW`: nothing
    /// planted in the folder (a file of the same name, a FIFO that would block, a symbolic link) is opened.
    func write(in directory: Int32, name: String) throws(SystemError) {
        let temporary = ".\(name).\(UInt64.random(in: 0...UInt64.max)).tmp"
        let bytes = exposition()
        let fd = openat(
            directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw SystemError("open \(temporary)") }
        var written = 0
        while written < bytes.count {
            let count = SystemCall.retrying {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            }
            guard count > 0 else {
                let error = SystemError("write \(temporary)")
                close(fd)
                unlinkat(directory, temporary, 0)
                throw error
            }
            written += count
        }
        close(fd)
        guard renameat(directory, temporary, directory, name) == 0 else {
            let error = SystemError("rename \(temporary)")
            unlinkat(directory, temporary, 0)
            throw error
        }
    }
}
