import Glibc
import RunvoyKit
import Testing

@testable import runvoyctl

/// `runvoyctl exec` against a daemon that refuses its connection at once (`busy`, `"id": null`) and closes it
/// before the request is written: it shows the daemon's error, not "Broken pipe". In process, against a socket
/// the test plays the daemon on, so that the refusal comes first every time.
@Suite(.serialized) struct ExecRefusalTests {
    static let refusal = RunvoyError(.busy, "runvoyd is at its limit of 32 connections; try again later")

    @Test func execShowsTheDaemonsRefusalNotABrokenPipe() throws {
        var template = Array("/tmp/runvoy-refusing-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        let path = directory + "/sock"
        defer {
            unlink(path)
            rmdir(directory)
        }
        let listener = try Harness.listeningSocket(at: path)
        defer { close(listener) }
        let session = try ExecSession(socketPath: path, quiet: true)
        // The daemon accepts, refuses and closes before runvoyctl has written anything.
        let fd = accept(listener, nil, nil)
        let frame = try Frame.encode(Reply<NoParams>(id: nil, error: Self.refusal))
        _ = frame.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer {
            // ExecSession forwards these to the daemon while it runs; the test process gets them back.
            for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { signal(sig, SIG_DFL) }
        }
        do {
            let status = try session.run(ExecParams(argv: ["true"]))
            Issue.record("exec ended with \(status)")
        } catch {
            #expect(error.remote == Self.refusal, "\(error)")
            #expect(error.description == "runvoyd is at its limit of 32 connections; try again later [busy]")
        }
    }
}
