import RunvoyKit
import Testing

@testable import runvoyctl

/// The line runvoyctl shows while an execution waits in the queue: what it waits for, its place, and who holds
/// the executor for how long (an hour and more included).
struct QueueDisplayTests {
    static func event(waitingFor: String?, position: Int = 2, holders: [JSONValue] = []) -> JSONValue {
        var members: [String: JSONValue] = [
            "event": .string("queued"), "executor": .string("deploy"), "position": .number(Double(position)),
            "limit": .number(3), "holders": .array(holders),
        ]
        if let waitingFor { members["waiting_for"] = .string(waitingFor) }
        return .object(members)
    }

    @Test(arguments: [
        ("concurrency", "queued: 2nd for deploy (concurrency 3)"),
        ("executions", "queued: 2nd for deploy (runvoyd's limit of 3 running executions)"),
        ("user_share", "queued: 2nd for deploy (your share of 3 running executions)"),
        ("lock", "queued: 2nd for deploy (a lock)"),
        ("something new", "queued: 2nd for deploy (its turn)"),
    ])
    func whatItWaitsForIsSaid(waitingFor: String, line: String) {
        #expect(QueueDisplay.describe(Self.event(waitingFor: waitingFor)) == line)
    }

    @Test func holdersAreNamedWithTheirTimesMovedOn() {
        let holders: [JSONValue] = [
            .object([
                "execution_id": .string("01m8r2kqabcdefghijklmnopqr"), "user": .string("alice"),
                "running_ms": .number(191_000),
            ]),
            .object(["running_ms": .number(3_600_000)]),
        ]
        let line = QueueDisplay.describe(Self.event(waitingFor: nil, holders: holders), elapsedMs: 1_000)
        #expect(
            line
                == "queued: 2nd for deploy (its turn); running: 01m8r2kq… by alice for 3m12s, "
                + "another user's execution for 1h00m")
    }

    @Test(arguments: [
        (Int64(-5), "0s"), (45_999, "45s"), (60_000, "1m00s"), (192_000, "3m12s"), (3_599_999, "59m59s"),
        (3_720_000, "1h02m"), (90_000_000, "25h00m"),
    ])
    func durations(ms: Int64, shown: String) {
        #expect(QueueDisplay.duration(ms) == shown)
    }

    @Test func ordinals() {
        let shown = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112].map(QueueDisplay.ordinal)
        #expect(
            shown == [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th", "112th",
            ])
    }
}
