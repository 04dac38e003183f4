import CRunvoyPosix
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// A failed spawn, stage and errno, and the wire error it becomes: the messages and `reason`s runvoyd has always
/// sent (the client chooses its exit status by the reason).
struct SpawnErrorTests {
    func wire(_ stage: Int32, _ errno: Int32) -> RunvoyError {
        SpawnError(.init(spawnStage: stage), errno: errno).wireError
    }

    func stage(_ value: runvoy_spawn_stage) -> Int32 { Int32(value.rawValue) }

    @Test func theChildsStagesAndErrnos() {
        let noEntry = SystemError.text(ENOENT)
        #expect(
            wire(stage(RUNVOY_STAGE_EXEC), ENOENT)
                == RunvoyError(.spawnFailed, "cannot execute the command: \(noEntry)", reason: "not_found"))
        for code in [ENOTDIR, ELOOP, ENAMETOOLONG] {
            #expect(wire(stage(RUNVOY_STAGE_EXEC), code).reason == "not_found")
        }
        #expect(
            wire(stage(RUNVOY_STAGE_EXEC), E2BIG)
                == RunvoyError(
                    .spawnFailed,
                    "the arguments and environment are too long for the kernel: \(SystemError.text(E2BIG))",
                    reason: "arguments_too_long"))
        for code in [ENOMEM, EAGAIN, EMFILE, ENFILE] {
            #expect(wire(stage(RUNVOY_STAGE_EXEC), code).reason == "resources")
            #expect(wire(stage(RUNVOY_STAGE_EXEC), code).message.hasPrefix("cannot execute the command: "))
        }
        for code in [EACCES, ENOEXEC, EISDIR, ETXTBSY, EPERM, ELIBBAD] {
            #expect(wire(stage(RUNVOY_STAGE_EXEC), code).reason == "not_executable")
        }
        #expect(
            wire(stage(RUNVOY_STAGE_CHDIR), ENOENT)
                == RunvoyError(
                    .spawnFailed, "cannot enter the working directory: \(noEntry)", reason: "working_directory"))
        for step in [RUNVOY_STAGE_SETGROUPS, RUNVOY_STAGE_SETGID, RUNVOY_STAGE_SETUID] {
            #expect(
                wire(stage(step), EPERM)
                    == RunvoyError(
                        .spawnFailed, "cannot switch to the run-as identity: \(SystemError.text(EPERM))",
                        reason: "identity"))
        }
        #expect(
            wire(stage(RUNVOY_STAGE_FORK), EAGAIN)
                == RunvoyError(.spawnFailed, "cannot fork: \(SystemError.text(EAGAIN))", reason: "resources"))
        #expect(
            wire(stage(RUNVOY_STAGE_DUP), EBADF)
                == RunvoyError(
                    .spawnFailed, "cannot start the command (stage 6): \(SystemError.text(EBADF))",
                    reason: "exec"))
        #expect(wire(stage(RUNVOY_STAGE_SETSID), EPERM).message.hasPrefix("cannot start the command (stage 1): "))
    }

    @Test func theDaemonsOwnStages() {
        let text = SystemError.text(EMFILE)
        #expect(
            SpawnError(.pipe, errno: EMFILE).wireError
                == RunvoyError(.spawnFailed, "cannot create a pipe: \(text)", reason: "resources"))
        #expect(
            SpawnError(.pidfd, errno: EMFILE).wireError
                == RunvoyError(.spawnFailed, "pidfd_open: \(text)", reason: "resources"))
        // The one that has never carried a reason.
        #expect(
            SpawnError(.devNull, errno: EMFILE).wireError
                == RunvoyError(.spawnFailed, "cannot open /dev/null: \(text)"))
        #expect(SpawnError(.devNull, errno: EMFILE).code == .resources)
    }
}
