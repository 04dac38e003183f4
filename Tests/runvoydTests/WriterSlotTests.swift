import Testing

@testable import RunvoyDaemon

/// The writer slot of `attach --write`: one connection at a time, given back only by its holder.
struct WriterSlotTests {
    final class Connection {}

    @Test func oneWriterAtATimeAndOnlyItsHolderGivesItBack() {
        let slot = WriterSlot()
        let first = Connection()
        let second = Connection()
        let a = ObjectIdentifier(first)
        let b = ObjectIdentifier(second)
        #expect(!slot.isHeld(by: a))
        #expect(slot.claim(a))
        #expect(slot.claim(a))
        #expect(!slot.claim(b))
        #expect(slot.isHeld(by: a) && !slot.isHeld(by: b))
        slot.release(b)
        #expect(slot.isHeld(by: a))
        slot.release(a)
        #expect(!slot.isHeld(by: a))
        #expect(slot.claim(b) && slot.isHeld(by: b))
    }
}
