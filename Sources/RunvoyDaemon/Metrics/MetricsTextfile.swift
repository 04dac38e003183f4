import Glibc
import Logging
import RunvoyKit
import ServiceLifecycle

/// Writes the exposition for node-exporter's textfile collector every `interval`: to a temporary file in the same
/// directory (a name the collector skips: it reads only `*.prom`), then renamed over `path`, so a reader sees the
/// old file or the new one, never part of one. The file is removed at shutdown, so stale figures do not outlive
/// the daemon.
struct MetricsTextfile: Service {
    let path: String
    let interval: Duration
    let logger: Logger
    var exposition: @Sendable () -> [UInt8] = { DaemonMetrics.shared.exposition() }

    func run() async throws {
        var failing = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do throws(SystemError) {
                try write()
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
        unlink(path)
    }

    /// Writes the exposition to `PATH.tmp` (mode 0644: node-exporter does not run as root) and renames it over
    /// `path`.
    func write() throws(SystemError) {
        let temporary = path + ".tmp"
        let bytes = exposition()
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw SystemError("open \(temporary)") }
        var written = 0
        while written < bytes.count {
            let count = SystemCall.retrying {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            }
            guard count > 0 else {
                let error = SystemError("write \(temporary)")
                close(fd)
                unlink(temporary)
                throw error
            }
            written += count
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = SystemError("rename \(temporary)")
            unlink(temporary)
            throw error
        }
    }
}
