import Foundation
import Glibc
import RunvoyKit
import Testing

/// docs/PROTOCOL.md, `exec`: "If a background process keeps the pipes open, the daemon stops reading 2 seconds
/// after the command itself exited." `leftovers` ends every process of the execution when its main process exits
/// (or keeps the execution running with `wait`), so the holder here is one no containment reaches: a process
/// outside the execution that has the command's output pipe, as a service the command handed it to would. It is
/// this test: it opens the command's standard output through /proc.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class DrainGraceTests {
    let daemon: DaemonFixture

    init() throws {
        daemon = try DaemonFixture()
    }

    deinit { daemon.stop() }

    @Test func readingStopsAfterTheCommandExitsWhileAnOutsiderHoldsItsOutput() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"argv":["sh","-c","echo ready; read line; echo bye"],"#
                + #""stdin":true}}"#)
        let started = try #require(try connection.readFrame())
        let pid = try #require(started["pid"] as? Int, "\(started)")
        let ready = try #require(try connection.readFrame())
        #expect(ready["event"] as? String == "output", "\(ready)")
        let held = open("/proc/\(pid)/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        try #require(held >= 0, "cannot open the command's output: \(String(cString: strerror(errno)))")
        defer { close(held) }
        // The command may now end: its input ends.
        try connection.sendFrame(#"{"v":1,"id":2,"method":"stdin","params":{"data":"Z28K"}}"#)
        try connection.sendFrame(#"{"v":1,"id":3,"method":"stdin","params":{"eof":true}}"#)
        // `exit` comes although the pipe is still open here (the receive timeout is 10 s; this holder never
        // closes it before the exit arrives).
        var exit: [String: Any]?
        var output = ""
        while exit == nil, let frame = try connection.readFrame() {
            if frame["event"] as? String == "exit" { exit = frame }
            if frame["event"] as? String == "output", let data = frame["data"] as? String {
                output += String(decoding: Data(base64Encoded: data) ?? Data(), as: UTF8.self)
            }
        }
        let event = try #require(exit, "no exit event while another process held the output pipe")
        #expect(event["exit_code"] as? Int == 0, "\(event)")
        #expect(output.contains("bye"))
        // The daemon closed its end: the pipe has no reader left.
        var poller = pollfd(fd: held, events: Int16(POLLOUT), revents: 0)
        #expect(poll(&poller, 1, 10_000) == 1)
        #expect(poller.revents & Int16(POLLERR) != 0, "the daemon still reads the pipe (revents \(poller.revents))")
    }
}
