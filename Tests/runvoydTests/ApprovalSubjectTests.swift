import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/SECURITY.md (approvals): an approval binds everything that decides what will run, so an approved request
/// runs only as it was shown. Here through real plans: the same request twice is the same subject; a request that
/// differs only in the secrets its command would receive, or in its timeout, is another (its digest differs).
@Suite struct ApprovalSubjectTests {
    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)

    static func digest(_ config: DaemonConfig, timeoutMs: Int64? = nil) throws -> String {
        let plan = try ExecPlan.make(
            ExecParams(argv: ["true"], executor: "vault", timeoutMs: timeoutMs), requestID: .number(1),
            caller: root, config: config)
        return ApprovalSubject(plan, reason: "ticket 7").digest
    }

    @Test func theSecretsACommandReceivesAndItsTimeoutAreBound() throws {
        let fixture = try ExecLaunchTests.Fixture()
        let config = fixture.config
        let vault = try #require(config.executors.firstIndex { $0.name == "vault" })
        let shown = try Self.digest(config)
        #expect(try Self.digest(config) == shown, "the same request is the same subject")

        var otherSecret = config
        otherSecret.executors[vault].secretEnvironment = ["TOKEN": "other"]
        #expect(try Self.digest(otherSecret) != shown, "another secret in the environment")

        var asFile = config
        asFile.executors[vault].secretEnvironment = [:]
        asFile.executors[vault].secretFiles = ["TOKEN_FILE": "token", "TOKEN": "token"]
        #expect(try Self.digest(asFile) != shown, "the same secret as a file instead of a variable")

        #expect(try Self.digest(config, timeoutMs: 60_000) != shown, "a timeout")
        #expect(try Self.digest(config, timeoutMs: 60_000) != Self.digest(config, timeoutMs: 61_000))
    }
}
