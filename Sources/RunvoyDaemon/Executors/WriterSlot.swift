import RunvoyKit

/// The one place for a writer attached to a running execution (`attach` with `write`): the connection that holds
/// it may send `stdin` to the execution by id. A second writer is refused while one holds it; the connection
/// that started the execution is not counted (its input goes on as before).
final class WriterSlot: Sendable {
    private let holder = Mutex<ObjectIdentifier?>(nil)

    /// Takes the slot for `connection`; false when another connection holds it.
    func claim(_ connection: ObjectIdentifier) -> Bool {
        holder.withLock { holder in
            guard holder == nil || holder == connection else { return false }
            holder = connection
            return true
        }
    }

    /// Gives the slot back, if `connection` holds it.
    func release(_ connection: ObjectIdentifier) {
        holder.withLock { holder in
            if holder == connection { holder = nil }
        }
    }

    func isHeld(by connection: ObjectIdentifier) -> Bool { holder.withLock { $0 == connection } }
}
