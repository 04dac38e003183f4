import Foundation
import Glibc
import RunvoyKit
import Testing

/// docs/SECURITY.md: the client writes the archive with `mkstemp` (0600 whatever the umask) and names it only once
/// the whole archive has arrived; a stream cut short leaves no file under the name and nothing else behind. The
/// daemon is a stand-in on a socket of the test's, which sends part of an archive and then either the result or
/// nothing (it closes the connection, as a killed daemon's kernel would): runvoyctl under `umask 000`.
@Suite struct BackupFileTests {
    /// A daemon that answers one `backup` request as the test says.
    final class StandIn {
        let directory: String
        let socketPath: String
        let listener: Int32
        private(set) var connection: Int32 = -1
        private(set) var requestID = ""

        init() throws {
            directory = try Harness.makeTemporaryDirectory()
            socketPath = directory + "/standin.sock"
            listener = try Harness.listeningSocket(at: socketPath)
        }

        deinit {
            if connection >= 0 { close(connection) }
            close(listener)
            try? FileManager.default.removeItem(atPath: directory)
        }

        /// Accepts the client and reads its request; keeps the id to answer with.
        func acceptRequest() throws -> [String: Any] {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 60_000) == 1 else { throw HarnessError("runvoyctl did not connect") }
            connection = accept(listener, nil, nil)
            var timeout = timeval(tv_sec: 60, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let header = try read(4)
            let length = Int(header.withUnsafeBytes { Frame.length(from: $0) })
            let object = try JSONSerialization.jsonObject(with: Data(try read(length))) as? [String: Any]
            let request = try #require(object)
            requestID = "\(try #require(request["id"] as? Int))"
            return request
        }

        func send(_ json: String) throws {
            let bytes = Frame.header(length: json.utf8.count) + Array(json.utf8)
            guard Glibc.send(connection, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
                throw HarnessError("send: \(errno)")
            }
        }

        func sendData(_ bytes: [UInt8]) throws {
            try send(#"{"id":\#(requestID),"event":"backup_data","data":"\#(Data(bytes).base64EncodedString())"}"#)
        }

        func sendResult(bytes: Int) throws {
            try send(
                #"{"id":\#(requestID),"result":{"bytes":\#(bytes),"sha256":"00","manifest_sha256":"00","#
                    + #""executions":0,"running_executions":0,"files":1,"includes_key":false,"created_at_ms":1}}"#)
        }

        /// Closes the connection, as a daemon that was killed.
        func cut() {
            close(connection)
            connection = -1
        }

        private func read(_ count: Int) throws -> [UInt8] {
            var buffer = [UInt8](repeating: 0, count: count)
            var offset = 0
            while offset < count {
                let n = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress! + offset, count - offset, 0) }
                guard n > 0 else { throw HarnessError("the client's request ended early") }
                offset += n
            }
            return buffer
        }
    }

    /// runvoyctl backup into `directory/archive.tar` under umask 000, in the background.
    static func backup(_ standIn: StandIn) throws -> ChildProcess {
        let command = "umask 000; exec \(Harness.runvoyctl) backup --socket \(standIn.socketPath) -o archive.tar"
        return try ChildProcess(
            ["/bin/sh", "-c", "cd \(standIn.directory) && " + command], stdoutPath: standIn.directory + "/ctl.out",
            stderrPath: standIn.directory + "/ctl.err")
    }

    /// The files in the stand-in's directory other than its own.
    static func archiveFiles(_ standIn: StandIn) -> [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: standIn.directory)) ?? []
        return all.filter { !["standin.sock", "ctl.out", "ctl.err"].contains($0) }.sorted()
    }

    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
    }

    /// Sends the first part and waits until runvoyctl has written it to its private file; returns that file.
    static func firstPart(_ standIn: StandIn, _ bytes: [UInt8]) throws -> String {
        let request = try standIn.acceptRequest()
        #expect(request["method"] as? String == "backup")
        try standIn.sendData(bytes)
        var partial: String?
        _ = Harness.waitUntil(seconds: 60) {
            partial = archiveFiles(standIn).first.map { standIn.directory + "/" + $0 }
            guard let partial, let size = try? FileManager.default.attributesOfItem(atPath: partial)[.size] as? Int
            else { return false }
            return size == bytes.count
        }
        let file = try #require(partial, "runvoyctl wrote nothing")
        #expect(file.hasPrefix(standIn.directory + "/.archive.tar.partial-"), "\(file)")
        #expect(mode(file) == 0o600, "the archive being received is not 0600 under umask 000")
        #expect(!FileManager.default.fileExists(atPath: standIn.directory + "/archive.tar"), "named before the end")
        return file
    }

    @Test func aStreamCutShortLeavesNoArchive() throws {
        let standIn = try StandIn()
        let client = try Self.backup(standIn)
        _ = try Self.firstPart(standIn, Array(repeating: 0x61, count: 100_000))
        standIn.cut()
        let status = try #require(client.wait(seconds: 60), "runvoyctl did not end after the cut")
        #expect(status != 0)
        let stderr = (try? String(contentsOfFile: standIn.directory + "/ctl.err", encoding: .utf8)) ?? ""
        #expect(stderr.contains("closed the connection"), "\(stderr)")
        #expect(Self.archiveFiles(standIn).isEmpty, "left behind: \(Self.archiveFiles(standIn))")
    }

    @Test func aWholeArchiveIsNamedOnlyAtTheEndAndStays0600() throws {
        let standIn = try StandIn()
        let client = try Self.backup(standIn)
        let first = (0..<150_000).map { UInt8(truncatingIfNeeded: $0) }
        let second = Array("the rest".utf8)
        _ = try Self.firstPart(standIn, first)
        try standIn.sendData(second)
        try standIn.sendResult(bytes: first.count + second.count)
        let status = try #require(client.wait(seconds: 60), "runvoyctl did not end")
        #expect(status == 0)
        let archive = standIn.directory + "/archive.tar"
        #expect(Self.archiveFiles(standIn) == ["archive.tar"])
        #expect(Self.mode(archive) == 0o600)
        #expect(FileManager.default.contents(atPath: archive) == Data(first + second))
    }

    /// A result announcing other than the bytes that came is a cut stream too: nothing is named.
    @Test func aResultThatDisagreesWithWhatArrivedLeavesNoArchive() throws {
        let standIn = try StandIn()
        let client = try Self.backup(standIn)
        _ = try Self.firstPart(standIn, Array(repeating: 0x62, count: 4096))
        try standIn.sendResult(bytes: 8192)
        let status = try #require(client.wait(seconds: 60), "runvoyctl did not end")
        #expect(status != 0)
        #expect(Self.archiveFiles(standIn).isEmpty, "left behind: \(Self.archiveFiles(standIn))")
    }
}
