import Foundation
import Glibc
import RunvoyKit
import Testing

/// Start-up, sd_notify, reload on SIGHUP, graceful SIGTERM, socket takeover and --check-config.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct LifecycleTests {
    @Test func notifiesReadyAndStoppingThroughNotifySocket() throws {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let notify = try NotifySocket(path: dir + "/notify")
        let daemon = try DaemonFixture(environment: ["NOTIFY_SOCKET": dir + "/notify"], waitForSocket: false)
        let ready = try notify.waitFor("READY=1")
        #expect(ready.contains("STATUS=serving"))
        try daemon.waitForSocket()
        _ = try daemon.ctl(["exec", "-q", "--", "true"])
        daemon.process.signal(SIGTERM)
        _ = try notify.waitFor("STOPPING=1")
        #expect(daemon.stop() == 0)
    }

    @Test func socketModeAndGroupComeFromTheConfiguration() throws {
        let daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0).replacingOccurrences(
                of: "  mode: \"0666\"", with: "  mode: \"0660\"\n  group: nogroup")
        })
        defer { daemon.stop() }
        var info = stat()
        #expect(stat(daemon.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
        #expect(info.st_gid == 65534)
        // nobody's group is nogroup: allowed in. The daemon user is not: refused, and told why.
        let member = try daemon.ctl(["exec", "-q", "--", "true"], asUser: "nobody")
        #expect(member.status == 0)
        let outsider = try daemon.ctl(["exec", "-q", "--", "true"], asUser: "daemon")
        #expect(outsider.status == 125)
        #expect(outsider.stderrText.contains("no permission to connect"))
    }

    @Test func operationalLogsGoToTheJournal() throws {
        let daemon = try DaemonFixture(logToJournal: true)
        defer { daemon.stop() }
        let entries = try Harness.journal([
            "SYSLOG_IDENTIFIER=runvoyd", "_PID=\(daemon.process.pid)", "MESSAGE=serving",
        ])
        #expect(entries.first?["RUNVOY_SOCKET"] == daemon.socketPath)
        #expect(entries.first?["PRIORITY"] == "6")
        #expect(entries.first?["CODE_FILE"] != nil)
    }

    @Test func feedsTheWatchdogWhenSystemdAsks() throws {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let notify = try NotifySocket(path: dir + "/notify")
        let daemon = try DaemonFixture(
            environment: ["NOTIFY_SOCKET": dir + "/notify", "WATCHDOG_USEC": "200000"], waitForSocket: false)
        _ = try notify.waitFor("READY=1")
        _ = try notify.waitFor("WATCHDOG=1")
        _ = try notify.waitFor("WATCHDOG=1")
        // SIGTERM with the watchdog running is a clean exit, so `systemctl stop` leaves the unit inactive.
        #expect(daemon.stop() == 0)
    }

    @Test func adoptsTheSocketSystemdPasses() throws {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let activated = dir + "/activated.sock"
        // systemd-socket-activate binds the socket and passes it as LISTEN_FDS=1, as a .socket unit would.
        let daemon = try DaemonFixture(
            wrapper: ["/usr/bin/systemd-socket-activate", "-E", "RUNVOYD_LOG_STDERR=1", "-l", activated],
            waitForSocket: false, socketPath: activated)
        defer { daemon.stop() }
        try daemon.waitForSocket()
        let out = try daemon.ctl(["exec", "-q", "--", "echo", "activated"])
        #expect(out.status == 0)
        #expect(out.stdoutText == "activated\n")
        #expect(daemon.log.contains("socket passed by systemd"))
    }

    @Test func executionsBeyondTheLimitAreToldBusy() throws {
        let daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0).replacingOccurrences(
                of: "max_connections: 4096", with: "max_connections: 4096\n  max_executions: 1")
        })
        defer { daemon.stop() }
        // The first execution runs until the test kills it, so it is certainly running when the second asks.
        let first = try daemon.ctl(["exec", "--detach", "--", "sleep", "600"])
        #expect(first.status == 0)
        let second = try daemon.ctl(["exec", "--no-wait", "--", "true"])
        #expect(second.status == 125)
        #expect(second.stderrText.contains("busy"))
        #expect(second.stderrText.contains("limit of 1 running executions"))
        #expect(try daemon.ctl(["kill", first.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)]).status == 0)
    }

    @Test func connectionsBeyondTheLimitAreToldBusy() throws {
        let daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0).replacingOccurrences(
                of: "max_connections: 4096", with: "max_connections: 3")
        })
        defer { daemon.stop() }
        // The fixture's readiness probe was a connection too, and the daemon sees it closed at a time of its own:
        // open connections until three are served (one told busy meanwhile is closed and tried again).
        var held: [RawConnection] = []
        let deadline = Date().addingTimeInterval(20)
        while held.count < 3, Date() < deadline {
            let connection = try RawConnection(path: daemon.socketPath)
            try connection.sendFrame(#"{"v":1,"id":1,"method":"hello"}"#)
            let reply = try #require(try connection.readFrame())
            if reply["result"] != nil { held.append(connection) } else { usleep(10_000) }
        }
        #expect(held.count == 3)
        let extra = try RawConnection(path: daemon.socketPath)
        let reply = try #require(try extra.readFrame())
        #expect((reply["error"] as? [String: Any])?["code"] as? String == "busy")
        #expect(extra.readsEOF())
        _ = held
    }

    @Test func reloadOnSIGHUPAddsAnExecutorAndKeepsRunningExecutions() throws {
        let daemon = try DaemonFixture()
        defer { daemon.stop() }
        let before = try daemon.ctl(["whoami"])
        #expect(!before.stdoutText.contains("newcomer"))
        // A running execution started under the old configuration; it ends only when the test releases it.
        let gate = daemon.directory + "/release"
        let running = try daemon.startCtl([
            "exec", "--", "sh", "-c", #"while [ ! -e "$1" ]; do sleep 0.05; done; echo survived"#, "sh", gate,
        ])
        _ = try running.executionID()

        let extra = """
              newcomer:
                run_as: {user: nobody}
                commands: any
            """
        try DaemonFixture.standardConfig(directory: daemon.directory, extra: extra)
            .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        daemon.process.signal(SIGHUP)
        var after = ""
        for _ in 0..<100 {
            after = try daemon.ctl(["whoami"]).stdoutText
            if after.contains("newcomer") { break }
            usleep(50_000)
        }
        #expect(after.contains("newcomer"))
        let reloaded = try Harness.journal(["_PID=\(daemon.process.pid)", "RUNVOY_EVENT=config_reloaded"])
        #expect(reloaded.first?["RUNVOY_CONFIG_PATH"] == daemon.configPath)

        #expect(running.process.isRunning)
        FileManager.default.createFile(atPath: gate, contents: nil)
        #expect(running.process.wait(seconds: 30) == 0)
        #expect(running.stdout == "survived\n")
    }

    @Test func anInvalidReloadIsRejectedAndTheOldConfigurationStays() throws {
        let daemon = try DaemonFixture()
        defer { daemon.stop() }
        try "executors:\n  broken:\n    run_as: {user: no-such-user-xyz}\n    commandz: any\n"
            .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        daemon.process.signal(SIGHUP)
        let rejected = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=config_rejected", "RUNVOY_CONFIG_PATH=\(daemon.configPath)",
        ])
        let errors = rejected.last?["RUNVOY_ERRORS"] ?? ""
        #expect(errors.contains("no-such-user-xyz"))
        #expect(errors.contains("commandz"))
        let out = try daemon.ctl(["exec", "-q", "--", "echo", "old config"])
        #expect(out.status == 0)
        #expect(out.stdoutText == "old config\n")
    }

    @Test func sigtermLetsRunningExecutionsFinishThenExitsZero() throws {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let notify = try NotifySocket(path: dir + "/notify")
        let daemon = try DaemonFixture(environment: ["NOTIFY_SOCKET": dir + "/notify"])
        // The execution ends only when the test releases it, after the daemon has begun to stop.
        let gate = daemon.directory + "/release"
        let running = try daemon.startCtl([
            "exec", "--", "sh", "-c", #"while [ ! -e "$1" ]; do sleep 0.05; done; echo finished"#, "sh", gate,
        ])
        _ = try running.executionID()
        daemon.process.signal(SIGTERM)
        _ = try notify.waitFor("STOPPING=1")
        // Stopping, the daemon waits for the execution (the grace period is 10 s, and it is still running).
        #expect(daemon.process.isRunning && running.process.isRunning)
        FileManager.default.createFile(atPath: gate, contents: nil)
        #expect(daemon.stop() == 0)
        #expect(running.process.wait(seconds: 30) == 0)
        #expect(running.stdout == "finished\n")
        #expect(access(daemon.socketPath, F_OK) != 0)
    }

    @Test func sigtermEndsExecutionsThatOutliveTheGracePeriod() throws {
        let daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0).replacingOccurrences(
                of: "shutdown_grace: 10s", with: "shutdown_grace: 1s")
        })
        let out = try daemon.ctl(["exec", "--detach", "--", "sleep", "60"])
        let id = out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        // The daemon ends the execution itself once the grace period is over (sleep 60 would outlast it).
        #expect(daemon.stop(seconds: 60) == 0)
        let finished = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_finished",
        ])
        #expect(finished.first?["RUNVOY_SIGNAL"] == String(SIGTERM))
    }

    @Test func refusesToStartWhenALiveDaemonHoldsTheSocket() throws {
        let first = try DaemonFixture()
        defer { first.stop() }
        let second = try Harness.run([Harness.runvoyd, "--config", first.configPath], timeout: 30)
        #expect(second.status != 0)
        #expect(second.stderrText.contains("already serving"))
        let still = try first.ctl(["exec", "-q", "--", "echo", "first"])
        #expect(still.stdoutText == "first\n")
    }

    @Test func replacesAStaleSocketFile() throws {
        let first = try DaemonFixture()
        first.process.signal(SIGKILL)
        first.process.wait()
        // SIGKILL leaves the socket file behind.
        #expect(access(first.socketPath, F_OK) == 0)
        let second = try DaemonFixture(
            config: { _ in (try? String(contentsOfFile: first.configPath, encoding: .utf8)) ?? "" },
            socketPath: first.socketPath)
        defer { second.stop() }
        let out = try second.ctl(["exec", "-q", "--", "echo", "replaced"])
        #expect(out.stdoutText == "replaced\n")
    }

    @Test func checkConfigNamesFileLineAndKey() throws {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bad.yaml"
        try """
        socket:
          path: /tmp/x.sock
        executors:
          web:
            run_as: {user: nobody}
            tiemout: 5m
            commands: any
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let out = try Harness.run([Harness.runvoyd, "--check-config", "--config", path])
        #expect(out.status != 0)
        let text = out.stdoutText + out.stderrText
        #expect(text.contains("\(path):6"))
        #expect(text.contains("tiemout"))

        let good = dir + "/good.yaml"
        try DaemonFixture.standardConfig(directory: dir).write(toFile: good, atomically: true, encoding: .utf8)
        let ok = try Harness.run([Harness.runvoyd, "--check-config", "--config", good])
        #expect(ok.status == 0)
        #expect(ok.stdoutText.contains("OK"))
    }
}

/// A datagram socket standing in for systemd's NOTIFY_SOCKET.
final class NotifySocket {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw HarnessError("bind notify socket: \(errno)") }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Reads datagrams until one contains `needle`; returns it.
    func waitFor(_ needle: String, seconds: Double = 20) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                let message = String(decoding: buffer.prefix(n), as: UTF8.self)
                if message.contains(needle) { return message }
            }
        }
        throw HarnessError("no \(needle) on NOTIFY_SOCKET within \(seconds) s")
    }
}
