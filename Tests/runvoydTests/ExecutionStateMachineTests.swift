import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// An execution's life stepped through without a process, a pipe or a clock (instants are passed in).
struct ExecutionStateMachineTests {
    typealias Machine = Execution.StateMachine

    static let start = ContinuousClock.now

    static func machine() -> Machine {
        Machine(executionID: "e1", requestID: .number(7), started: start)
    }

    @Test func aCommandThatExitsByItselfIsDrainedRecordedAndFinished() {
        var machine = Self.machine()
        #expect(machine.state == .running(.none))
        #expect(machine.maySignal)
        machine.leaderExited(.exited(3))
        #expect(machine.state == .draining(.exited(3), .none))
        // The leader is a zombie while output drains and while the end is recorded: its group may be signalled.
        #expect(machine.maySignal)
        let event = machine.outputDrained(at: Self.start + .milliseconds(1500))
        #expect(
            event
                == ExitEvent(
                    id: .number(7), executionId: "e1", exitCode: 3, signal: nil, timedOut: false,
                    durationUsec: 1_500_000))
        #expect(machine.exitEvent == nil, "not finished until its end is recorded")
        #expect(machine.maySignal)
        #expect(machine.finish() == event)
        #expect(machine.exitEvent == event)
        #expect(!machine.maySignal)
        #expect(!machine.killsWhenGraceEnds)
    }

    @Test func terminationIsAskedForOnceAndATimeoutIsRemembered() {
        var machine = Self.machine()
        #expect(machine.terminate(timedOut: false) == .signalAndArmKillTimer)
        #expect(machine.state == .running(.requested(timedOut: false)))
        // Asked again: no second SIGTERM, no second timer; but the timeout that fired is what the exit says.
        #expect(machine.terminate(timedOut: true) == .none)
        #expect(machine.state == .running(.requested(timedOut: true)))
        #expect(machine.terminate(timedOut: false) == .none)
        #expect(machine.state == .running(.requested(timedOut: true)))
        #expect(machine.killsWhenGraceEnds)
        machine.leaderExited(.signaled(SIGTERM))
        let event = machine.outputDrained(at: Self.start + .seconds(2))
        #expect(event.timedOut && event.signal == SIGTERM && event.exitCode == nil)
        #expect(machine.finish().timedOut)
    }

    @Test func aTimeoutEndsTheCommandAsTimedOut() {
        var machine = Self.machine()
        #expect(machine.terminate(timedOut: true) == .signalAndArmKillTimer)
        machine.leaderExited(.signaled(SIGKILL))
        #expect(machine.outputDrained(at: Self.start).timedOut)
    }

    @Test func terminationWhileDrainingStillSignalsTheGroup() {
        // The leader exited but something it started still holds the pipes (kill_on_disconnect, shutdown).
        var machine = Self.machine()
        machine.leaderExited(.exited(0))
        #expect(machine.terminate(timedOut: false) == .signalAndArmKillTimer)
        #expect(machine.state == .draining(.exited(0), .requested(timedOut: false)))
        #expect(machine.terminate(timedOut: false) == .none)
        #expect(machine.killsWhenGraceEnds)
        let event = machine.outputDrained(at: Self.start + .microseconds(10))
        #expect(event.exitCode == 0 && event.durationUsec == 10 && !event.timedOut)
    }

    @Test func terminationWhileTheEndIsRecordedSignalsButDoesNotChangeTheExit() {
        var machine = Self.machine()
        machine.leaderExited(.exited(0))
        let event = machine.outputDrained(at: Self.start)
        #expect(machine.terminate(timedOut: true) == .signalAndArmKillTimer)
        #expect(machine.killsWhenGraceEnds)
        #expect(machine.finish() == event)
        #expect(!event.timedOut)
    }

    @Test func nothingIsSignalledOnceFinished() {
        var machine = Self.machine()
        machine.leaderExited(.signaled(SIGKILL))
        _ = machine.outputDrained(at: Self.start)
        _ = machine.finish()
        #expect(machine.terminate(timedOut: true) == .none)
        #expect(machine.terminate(timedOut: false) == .none)
        #expect(!machine.maySignal)
        #expect(!machine.killsWhenGraceEnds)
        #expect(machine.exitEvent?.signal == SIGKILL)
    }
}
