import Foundation
import Glibc

/// Checks a schedule's calendar expression the way systemd will read it: libsystemd has no public calendar
/// parser, so `systemd-analyze calendar -- EXPR` decides. Fails closed: when the tool is missing, does not answer
/// in time or cannot be run, the expression counts as invalid, so no unchecked timer is ever written.
enum PlaybookCalendar {
    /// Where the tool is looked for (no PATH search: the configuration is read as root).
    static let tools = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
    static let timeout: TimeInterval = 20

    /// What is wrong with `expression`, nil when systemd accepts it.
    static func problem(_ expression: String) -> String? {
        if let problem = PlaybookParameter.textProblem(expression) { return "the calendar \(problem)" }
        guard let tool = tools.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return "cannot check the calendar: systemd-analyze is not installed (\(tools.joined(separator: ", ")))"
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["calendar", "--", expression]
        process.environment = ["LANG": "C.UTF-8", "PATH": "/usr/bin:/bin", "SYSTEMD_COLORS": "0"]
        let output = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do {
            try process.run()
        } catch {
            return "cannot check the calendar: cannot run \(tool): \(error.localizedDescription)"
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            done.wait()
            return "cannot check the calendar: \(tool) did not answer within \(Int(timeout)) seconds"
        }
        guard process.terminationStatus != 0 else { return nil }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile().prefix(400), as: UTF8.self)
        let reason = text.split(whereSeparator: \.isNewline).first.map { ": " + $0 } ?? ""
        return "systemd does not accept the calendar expression\(reason)"
    }
}
