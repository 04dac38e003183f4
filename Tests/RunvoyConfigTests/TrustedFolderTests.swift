import Foundation
import Glibc
import Testing

@testable import RunvoyConfig

/// The folder of files the daemon trusts as its own: what is not a directory, not a regular file, too large or
/// not text is refused with what it is, and a folder that is not there is no error.
struct TrustedFolderTests {
    typealias Scratch = PlaybookConfigTests.Scratch

    /// Opens `path`, returning the folder and what was reported.
    static func open(_ path: String) -> (TrustedFolder?, [String]) {
        var reports: [String] = []
        let folder = TrustedFolder.open(path) { reports.append($0) }
        return (folder, reports)
    }

    @Test func aPlaybooksFileThatIsNotAFolderFailsTheConfiguration() throws {
        let scratch = try Scratch()
        try PlaybookConfigTests.minimal.write(toFile: scratch.folder, atomically: false, encoding: .utf8)
        do {
            _ = try ConfigLoader.load(path: scratch.config)
            Issue.record("a configuration with a playbooks file loaded")
        } catch {
            #expect(error.diagnostics.map(\.description) == ["\(scratch.folder):1:1: error: is not a directory"])
        }
    }

    @Test func aMissingFolderIsNoErrorAndAnUnopenableOneIsReported() throws {
        let scratch = try Scratch()
        let (missing, quiet) = Self.open(scratch.folder)
        #expect(missing == nil && quiet.isEmpty)
        let long = scratch.root + "/" + String(repeating: "x", count: 300)
        let (tooLong, reports) = Self.open(long)
        #expect(tooLong == nil)
        #expect(reports == ["cannot open the folder: File name too long"])
    }

    @Test func onlyRegularUTF8FilesWithinTheLimitAreRead() throws {
        let scratch = try Scratch()
        try scratch.write("fine.yaml", "12345678")
        try scratch.write("large.yaml", "123456789")
        try Data([0x61, 0xC3, 0x28]).write(to: URL(fileURLWithPath: scratch.folder + "/binary.yaml"))
        #expect(mkdir(scratch.folder + "/sub.yaml", 0o755) == 0)
        #expect(mkfifo(scratch.folder + "/fifo.yaml", 0o644) == 0)
        let (opened, reports) = Self.open(scratch.folder)
        #expect(reports.isEmpty)
        let folder = try #require(opened)
        defer { close(folder.fd) }
        #expect(folder.names == ["binary.yaml", "fifo.yaml", "fine.yaml", "large.yaml", "sub.yaml"])
        func read(_ name: String) -> String {
            var reports: [String] = []
            let text = folder.read(name, limit: 8) { reports.append($0) }
            #expect((text == nil) == (reports.count == 1), "\(name)")
            return text ?? reports.joined()
        }
        #expect(read("fine.yaml") == "12345678")
        #expect(read("large.yaml") == "is larger than 8 bytes")
        #expect(read("binary.yaml") == "is not UTF-8 text")
        #expect(read("sub.yaml") == "is not a regular file")
        #expect(read("fifo.yaml") == "is not a regular file")
        #expect(read("gone.yaml") == "cannot open: No such file or directory")
    }
}
