import NIOPosix
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// `trace`'s slots: one trace in flight per user, a few in all; more are `busy`, with words saying which.
@Suite struct TraceSlotsTests {
    @Test func oneTracePerUserAndAFewInAll() {
        let slots = TraceSlots(total: 2)
        #expect(slots.take(1000) == nil)
        let second = slots.take(1000)
        #expect(second?.code == .busy && second?.message.contains("a trace of yours") == true)
        #expect(slots.take(1001) == nil)
        let full = slots.take(1002)
        #expect(full?.code == .busy && full?.message.contains("2 traces") == true)
        slots.give(1000)
        #expect(slots.take(1000) == nil)
        #expect(TraceHandler.maxInFlight == TraceHandler.slots.total)
    }

    /// Traces read on a pool of their own: a backup holding the shared pool does not hold them, nor they it.
    @Test func tracesHaveAThreadPoolOfTheirOwn() async throws {
        #expect(TraceHandler.pool !== NIOThreadPool.singleton)
        #expect(try await TraceHandler.pool.runIfActive { 42 } == 42)
    }
}
