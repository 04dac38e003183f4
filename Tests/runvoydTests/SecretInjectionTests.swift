import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/SECURITY.md (secrets): a secret goes into an environment variable only as text without NUL bytes (the
/// kernel would cut it at the first NUL, and the command would run with part of its credential); otherwise the
/// execution is refused with `invalid_state`, told to use `secret_files`, and the value is in no message.
@Suite struct SecretInjectionTests {
    @Test(arguments: [
        [UInt8(ascii: "a"), 0, UInt8(ascii: "b")],
        [0xFF, 0xFE, UInt8(ascii: "z")],
    ])
    func aSecretThatIsNotTextIsNeverPutInTheEnvironment(value: [UInt8]) throws {
        let fixture = try ExecLaunchTests.Fixture()
        try fixture.secrets.set("token", value: value, description: nil, uid: 0, user: "root", atMs: 2)
        var executor = try #require(fixture.config.executor(named: "vault"))
        executor.secretFiles = [:]
        let error = #expect(throws: RunvoyError.self) {
            _ = try SecretInjection.prepare(
                executor: executor, store: fixture.secrets, executionID: "01test", runtimeDirectory: "/nonexistent",
                owner: nil, adminContact: nil, trustedWriter: { _ in true })
        }
        #expect(error?.code == .invalidState)
        #expect(
            error?.message
                == "secret 'token' is not text without NUL bytes, so it cannot go into TOKEN; use secret_files")
        // The same value goes to a secret file whole.
        executor = try #require(fixture.config.executor(named: "vault"))
        executor.secretEnvironment = [:]
        let runtime = fixture.config.secrets.runtimeDirectory
        let injection = try SecretInjection.prepare(
            executor: executor, store: fixture.secrets, executionID: "01file", runtimeDirectory: runtime,
            owner: nil, adminContact: nil, trustedWriter: { _ in true })
        defer { injection.cleanUp() }
        let path = try #require(injection.environment["TOKEN_FILE"])
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == value)
    }
}
