import Foundation
import Glibc
import Logging
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// The launch of an allowed execution failing at each stage, in process through `ExecutionManager.start` (the
/// edge that turns failures into wire errors), with a spawner that fails where a test says: each leaves no row
/// `running`, no secret file and no process, tells the client what it always did, and records the right reason
/// in the history and the right records, in order, in a journal the test reads. Runs as root: the secret files
/// are chowned to the run-as user.
struct ExecLaunchTests {
    /// A state directory, a secrets store with one secret set by root, and a journal socket the test reads.
    final class Fixture {
        let directory: String
        let config: DaemonConfig
        let store: ExecutionStore
        let secrets: SecretStore
        let journald: JournalTests.FakeJournald
        let journal: Journal
        let logger = Logger(label: "ExecLaunchTests")

        init(
            failClosed: Bool = true, journalPath: String? = nil, limits: String = "{}", auditTimeout: String = "100ms"
        ) throws {
            var template = Array("/tmp/runvoy-launch-XXXXXX".utf8CString)
            directory = String(cString: mkdtemp(&template)!)
            config = try ConfigLoader.parse(
                yaml: """
                    state_directory: \(directory)/state
                    kill_grace: 200ms
                    limits: \(limits)
                    audit: {fail_closed: \(failClosed), write_timeout: \(auditTimeout)}
                    secrets: {runtime_directory: \(directory)/run}
                    roles:
                      developer: {users: ["*"]}
                    executors:
                      vault:
                        default: true
                        run_as: {user: nobody}
                        environment:
                          PATH: /usr/bin:/bin
                          TOKEN: {secret: token}
                        secret_files:
                          TOKEN_FILE: {secret: token}
                        allow: {users: ["*"]}
                        commands: any
                      ghost:
                        run_as: {user: nobody}
                        environment: {MISSING: {secret: never-set}}
                        allow: {users: ["*"]}
                        commands: any
                    """, file: "launch.yaml")
            store = try ExecutionStore(stateDirectory: config.stateDirectory)
            secrets = try SecretStore(store: store, key: try #require(MasterKey.parse(Array(repeating: 9, count: 32))))
            try secrets.set("token", value: Array("s3cret".utf8), description: nil, uid: 0, user: "root", atMs: 1)
            _ = try SecretInjection.prepareRuntimeDirectory(config.secrets.runtimeDirectory)
            journald = try JournalTests.FakeJournald()
            journal = Journal(socketPath: journalPath ?? journald.path)
        }

        deinit { FileSystem.removeTree(directory) }

        func manager(_ spawner: any ProcessSpawner, drainGrace: Duration = .seconds(2)) -> ExecutionManager {
            ExecutionManager(
                group: MultiThreadedEventLoopGroup.singleton, logger: logger, store: store, secrets: secrets,
                refusals: RefusalThrottle(logger: logger), spawner: spawner, journal: journal, drainGrace: drainGrace
            ) { _ in }
        }

        /// Starts `argv` as root (who may use everything) and returns the refusal.
        func refusal(_ argv: [String], executor: String? = nil, spawner: any ProcessSpawner) async -> RunvoyError? {
            let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
            do {
                _ = try await manager(spawner).start(
                    ExecParams(argv: argv, executor: executor), requestID: .number(5), caller: root, config: config,
                    sink: nil
                ) { _ in }
                return nil
            } catch {
                return error
            }
        }

        /// The only history row.
        func row() throws -> ExecutionInfo {
            let rows = try store.list(ListParams(limit: 10), ownerUid: nil)
            #expect(rows.count == 1)
            return try #require(rows.first)
        }

        /// The event and reason of each record written, in order (the journal is drained, so this is once).
        func records() -> [(event: String, reason: String?)] {
            journal.drain(timeout: .seconds(10))
            return journald.receiveAll().map { datagram in
                let lines = datagram.split(separator: "\n").map(String.init)
                func field(_ name: String) -> String? {
                    lines.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
                }
                return (field("RUNVOY_EVENT") ?? "?", field("RUNVOY_REASON"))
            }
        }

        var secretFolders: [String] { FileSystem.entries(config.secrets.runtimeDirectory) }
    }

    /// Fails at the stage it is given, and counts its calls.
    final class FailingSpawner: ProcessSpawner, @unchecked Sendable {
        let error: SpawnError
        private(set) var calls = 0
        init(_ error: SpawnError) { self.error = error }
        func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
            calls += 1
            throw error
        }
    }

    /// Starts the command for real, then hands back a regular file for its output, which NIO refuses as a pipe.
    final class BadPipeSpawner: ProcessSpawner, @unchecked Sendable {
        private(set) var pid: pid_t = 0
        let file: String
        init(file: String) { self.file = file }
        func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
            var process = try PosixSpawner().spawn(request)
            pid = process.pid
            close(process.stdoutFD)
            process.stdoutFD = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            return process
        }
    }

    @Test func secretsThatCannotBeInjectedAreADenialAndNothingIsLeft() async throws {
        let fixture = try Fixture()
        let spawner = FailingSpawner(SpawnError(.exec, errno: ENOENT))
        let error = try #require(await fixture.refusal(["true"], executor: "ghost", spawner: spawner))
        #expect(error.code == .secretMissing)
        #expect(error.message == "executor 'ghost' needs secret 'never-set', which is not set by an admin")
        #expect(spawner.calls == 0)
        let row = try fixture.row()
        #expect(row.status == .failed)
        #expect(row.reason == "secret_missing: \(error.message)")
        #expect(fixture.secretFolders.isEmpty)
        let records = fixture.records()
        #expect(records.map(\.event) == ["decision"])
        #expect(records.first?.reason == "secret_missing: \(error.message)")
    }

    @Test func aJournalThatDoesNotTakeTheRecordsRunsNothing() async throws {
        let fixture = try Fixture(journalPath: "/nonexistent/runvoy-test-journal.sock")
        let spawner = FailingSpawner(SpawnError(.exec, errno: ENOENT))
        let error = try #require(await fixture.refusal(["true"], spawner: spawner))
        #expect(error.code == .auditUnavailable)
        #expect(error.message.hasPrefix("the audit trail cannot be written ("))
        #expect(spawner.calls == 0, "fail-closed: nothing runs unaudited")
        let row = try fixture.row()
        #expect(row.status == .failed && row.reason == "audit_unavailable: \(error.message)")
        // The secret files written for it are gone again.
        #expect(fixture.secretFolders.isEmpty)
    }

    @Test func aCommandThatCannotStartIsRecordedAsStartedThenFailed() async throws {
        let fixture = try Fixture()
        let spawner = FailingSpawner(SpawnError(.exec, errno: ENOENT))
        let error = try #require(await fixture.refusal(["true"], spawner: spawner))
        #expect(
            error
                == RunvoyError(
                    .spawnFailed, "cannot execute the command: No such file or directory", reason: "not_found"))
        #expect(spawner.calls == 1)
        let row = try fixture.row()
        #expect(
            row.status == .failed && row.reason == "spawn_failed: cannot execute the command: No such file or directory"
        )
        #expect(fixture.secretFolders.isEmpty)
        let records = fixture.records()
        #expect(records.map(\.event) == ["decision", "execution_started", "execution_finished"])
        #expect(records.last?.reason == "spawn_failed: cannot execute the command: No such file or directory")
    }

    @Test func pipesThatCannotBeSetUpKillTheCommand() async throws {
        let fixture = try Fixture()
        let spawner = BadPipeSpawner(file: fixture.directory + "/not-a-pipe")
        let error = try #require(await fixture.refusal(["sleep", "600"], spawner: spawner))
        #expect(error.code == .spawnFailed && error.reason == "resources")
        #expect(error.message.hasPrefix("cannot set up the command's pipes: "))
        // Killed and reaped: the pid names no process (nor a zombie) any more.
        #expect(spawner.pid > 0)
        #expect(kill(spawner.pid, 0) == -1 && errno == ESRCH)
        let row = try fixture.row()
        #expect(row.status == .failed && row.reason?.hasPrefix("pipes: ") == true)
        #expect(fixture.secretFolders.isEmpty)
        let records = fixture.records()
        #expect(records.map(\.event) == ["decision", "execution_started", "execution_finished"])
        #expect(records.last?.reason?.hasPrefix("pipes: ") == true)
    }

    @Test func eachStageSaysWhatTheClientTheHistoryAndTheAuditTrailGet() {
        let history = LaunchFailure(stage: .history(StoreError(.database, "disk I/O error")))
        #expect(history.isDenial)
        #expect(
            history.error == RunvoyError(.storeUnavailable, "the execution history cannot be written; nothing was run"))
        #expect(history.stage.historyReason == "store_unavailable: disk I/O error")
        #expect(history.stage.finishedRecord(executionID: "e", fields: [], pid: nil) == nil)

        let missing = RunvoyError(.secretMissing, "needs secret 's'")
        let secrets = LaunchFailure(stage: .secrets(missing))
        #expect(secrets.isDenial && secrets.error == missing)
        #expect(secrets.stage.historyReason == "secret_missing: needs secret 's'")

        let audit = LaunchFailure(stage: .audit(RunvoyError(.auditUnavailable, "no journal")))
        #expect(!audit.isDenial && audit.stage.historyReason == "audit_unavailable: no journal")
        #expect(audit.stage.finishedRecord(executionID: "e", fields: [], pid: nil) == nil)

        let spawn = LaunchFailure(stage: .spawn(SpawnError(.chdir, errno: ENOENT)))
        #expect(!spawn.isDenial)
        #expect(spawn.error.reason == "working_directory")
        let record = spawn.stage.finishedRecord(executionID: "e", fields: [("EXECUTION_ID", "e")], pid: nil)
        #expect(record?.kind == .executionFinished && record?.priority == 4)
        #expect(
            record?.message
                == "execution e failed to start: cannot enter the working directory: No such file or directory")
        #expect(record?.fields.map(\.0) == ["EXECUTION_ID", "REASON"])

        let pipes = LaunchFailure(stage: .pipes(POSIXError(.EMFILE)))
        #expect(!pipes.isDenial && pipes.error.reason == "resources")
        #expect(
            pipes.stage.finishedRecord(executionID: "e", fields: [], pid: 42)?.fields.map(\.0) == ["PID", "REASON"])
    }
}
