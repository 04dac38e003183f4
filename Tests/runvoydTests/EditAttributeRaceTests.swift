import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// The Glibc module has no xattr calls; these are the C functions.
@_silgen_name("fgetxattr")
private func pocFgetxattr(
    _ fd: Int32, _ name: UnsafePointer<CChar>, _ value: UnsafeMutableRawPointer?, _ size: Int
) -> Int

/// Security review of edit2 (revedit2 PoC): `copy_attribute` in runvoy_edit.c asks an attribute's size with
/// `fgetxattr(from, name, NULL, 0)`, allocates that many bytes (1 when the size is 0), and reads it with
/// `fgetxattr(from, name, value, need)`. With `need == 0` that second call is again a size query (the man page:
/// "if size is zero ... return the current size ... and leave value unchanged"), so when the attribute grew in
/// between, `got` is its new size and `fsetxattr(to, name, value, got)` copies `got` bytes from a 1-byte heap
/// block: the root daemon's heap (up to 64 KiB a time) goes into an attribute of the new file, which belongs to
/// the executor's user and which that user can open as soon as it appears (and keep open after it is unlinked on
/// the conflict that follows). Whoever may write the file's `user.*` attributes (its owner, `run_as`, which a
/// developer with `exec` on the executor can act as; a group with write permission) flips one between empty and
/// large while edits are saved.
@Suite(.serialized) struct EditAttributeRaceTests {
    struct Stop: Error {}

    @Test func anAttributeThatGrowsBetweenItsSizeAndItsReadIsNotFilledFromTheDaemonsHeap() async throws {
        let directory = NSTemporaryDirectory() + "edit-xattr-race-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/f.conf"
        FileManager.default.createFile(atPath: path, contents: Data("a\n".utf8))
        let size = 512
        // The racer: user.x alternates between empty and `size` bytes of 'A'.
        let racer = Process()
        racer.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        racer.arguments = [
            "-c",
            "import os,sys,time\np=sys.argv[1]\nbig=b'A'*\(size)\nos.setxattr(p,'user.x',b'')\n"
                + "print('ready',flush=True)\nend=time.time()+120\nwhile time.time()<end:\n"
                + " os.setxattr(p,'user.x',b'')\n os.setxattr(p,'user.x',big)\n",
            path,
        ]
        let ready = Pipe()
        racer.standardOutput = ready
        try racer.run()
        defer {
            kill(racer.processIdentifier, SIGKILL)
            racer.waitUntilExit()
        }
        let line = ready.fileHandleForReading.availableData
        try #require(
            String(decoding: line, as: UTF8.self).hasPrefix("ready"), "this file system has no user attributes")

        let editor = FileEditor(identity: nil)
        let pattern = [UInt8](repeating: 0x41, count: size)
        var leaked: [UInt8]?
        var copies = 0
        for _ in 0..<5000 {
            if leaked != nil { break }
            guard let snapshot = try? editor.read(path, maxBytes: 1000) else { continue }
            try? await editor.write(path, content: Array("b\n".utf8), over: snapshot) {
                // The new file, written and fsynced, before it would replace the old one.
                let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                for name in names where name.hasPrefix(".f.conf.runvoy-edit-") {
                    let fd = open(directory + "/" + name, O_RDONLY | O_CLOEXEC)
                    guard fd >= 0 else { continue }
                    defer { close(fd) }
                    var value = [UInt8](repeating: 0, count: 65536)
                    let got = value.withUnsafeMutableBytes { pocFgetxattr(fd, "user.x", $0.baseAddress, $0.count) }
                    guard got > 0 else { continue }
                    copies += 1
                    let copied = Array(value.prefix(got))
                    if copied != pattern { leaked = copied }
                }
                throw Stop()
            }
        }
        let shown = leaked.map { $0.prefix(48).map { String(format: "%02x", $0) }.joined() } ?? ""
        let clean = leaked == nil
        #expect(
            clean,
            "the new file's user.x holds \(leaked?.count ?? 0) bytes that were never the old file's (daemon heap: \(shown)…)"
        )
        #expect(copies > 0, "the attribute was never copied while large: the race was not exercised")
    }
}
