import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// The waiting room: places per executor in arrival order, a wait ended once, its turn delivered whether the
/// request looks before or after it ends.
@Suite struct WaitingRoomTests {
    static func waiter(_ ticket: UInt64, _ executor: String, uid: uid_t = 1000) -> WaitingRoom.Waiter {
        WaitingRoom.Waiter(
            ticket: ticket, executionID: "e\(ticket)", executor: executor, uid: uid, holder: .member,
            concurrency: 1, queuedAtMs: 0)
    }

    @Test func placesAreCountedPerExecutorInArrivalOrder() {
        var room = WaitingRoom()
        for (ticket, executor) in [(1, "a"), (2, "b"), (3, "a"), (5, "a"), (8, "b")] {
            room.add(Self.waiter(UInt64(ticket), executor))
        }
        #expect([1, 3, 5].map { room.position($0) } == [1, 2, 3])
        #expect([2, 8].map { room.position($0) } == [1, 2])
        #expect(room.count == 5 && room.waitingTickets == [1, 2, 3, 5, 8])
        #expect(room.ticket(of: "e5") == 5 && room.ticket(of: "e4") == nil && room.position(4) == nil)
        let before = room.generation
        let ended = room.end(3, .started)
        #expect(ended)
        #expect(room.generation != before)
        #expect(room.position(5) == 2 && room.position(3) == nil && room.ticket(of: "e3") == nil)
        // A wait ends once.
        let again = room.end(3, .left(error: RunvoyError(.cancelled, "x"), cause: "cancelled"))
        let never = room.end(42, .started)
        #expect(!again && !never)
        #expect(room.count == 4)
    }

    @Test func aTurnIsDeliveredWhetherTheRequestLooksBeforeOrAfterItEnds() async {
        var room = WaitingRoom()
        room.add(Self.waiter(1, "a"))
        room.add(Self.waiter(2, "a"))
        // Ended before the request looks: the turn waits in the room for it.
        let timedOut = room.end(1, .left(error: RunvoyError(.queueTimeout, "late"), cause: "wait_timeout"))
        #expect(timedOut)
        let box = Mutex(room)
        let first = await withCheckedContinuation { continuation in
            if let turn = box.withLock({ $0.await(1, continuation) }) { continuation.resume(returning: turn) }
        }
        guard case .left(let error, let cause) = first else {
            Issue.record("\(first)")
            return
        }
        #expect(error.code == .queueTimeout && cause == "wait_timeout")
        #expect(box.withLock { $0.waiters[1] } == nil)
        // Looked at first: the end resumes it.
        async let second = withCheckedContinuation { continuation in
            if let turn = box.withLock({ $0.await(2, continuation) }) { continuation.resume(returning: turn) }
        }
        while box.withLock({ $0.waiters[2]?.continuation == nil }) { await Task.yield() }
        let started = box.withLock { $0.end(2, .started) }
        #expect(started)
        guard case .started = await second else {
            Issue.record("not started")
            return
        }
        #expect(box.withLock { $0.waiters.isEmpty && $0.count == 0 })
        // A ticket the room never had is an internal error, not a hang.
        let unknown = await withCheckedContinuation { continuation in
            if let turn = box.withLock({ $0.await(9, continuation) }) { continuation.resume(returning: turn) }
        }
        guard case .left(let lost, _) = unknown else {
            Issue.record("\(unknown)")
            return
        }
        #expect(lost.code == .internalError)
    }
}
