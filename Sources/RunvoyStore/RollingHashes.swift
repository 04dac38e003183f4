/// The rolling hashes of `RedactionSet.process`: one per group of forms of one length, over the window that starts
/// at the scan position. Every step compares every group's hash with both of its forms and rolls every group, so
/// the work per byte is the same whatever the bytes are (no oracle in the time taken).
///
/// It only borrows buffers that `RedactionSet.withHashes` keeps alive for the duration of one scan.
struct RollingHashes {
    let base: UInt64
    let lengths: UnsafeBufferPointer<Int>
    /// `base` to the power of each group's length minus one, to take the outgoing byte out.
    let tops: UnsafeBufferPointer<UInt64>
    let firsts: UnsafeBufferPointer<UInt64>
    let seconds: UnsafeBufferPointer<UInt64>
    let rolling: UnsafeMutableBufferPointer<UInt64>

    /// Hashes every group's whole window at `scan` (at the start, and after a match moved the scan).
    @inline(__always)
    func start(_ bytes: UnsafeRawBufferPointer, at scan: Int) {
        for group in 0..<lengths.count where scan + lengths[group] <= bytes.count {
            var hash: UInt64 = 0
            for index in scan..<(scan + lengths[group]) {
                hash = hash &* base &+ UInt64(bytes[index])
            }
            rolling[group] = hash
        }
    }

    /// Compares every group at `scan` and rolls it one byte on, when every window and the byte after it are
    /// there. Non-zero when some group's hash matched one of its forms.
    @inline(__always)
    func compareAndRoll(_ bytes: UnsafeRawBufferPointer, at scan: Int) -> UInt64 {
        var hits: UInt64 = 0
        let outgoing = UInt64(bytes[scan])
        for group in 0..<lengths.count {
            let hash = rolling[group]
            hits |= (hash == firsts[group] ? 1 : 0) | (hash == seconds[group] ? 1 : 0)
            rolling[group] = (hash &- outgoing &* tops[group]) &* base &+ UInt64(bytes[scan + lengths[group]])
        }
        return hits
    }

    /// `compareAndRoll` near the end of the buffer, where some groups' windows (or the byte after) are missing.
    @inline(__always)
    func compareAndRollNearEnd(_ bytes: UnsafeRawBufferPointer, at scan: Int) -> UInt64 {
        var hits: UInt64 = 0
        for group in 0..<lengths.count where scan + lengths[group] <= bytes.count {
            let hash = rolling[group]
            hits |= (hash == firsts[group] ? 1 : 0) | (hash == seconds[group] ? 1 : 0)
        }
        for group in 0..<lengths.count where scan + lengths[group] < bytes.count {
            let outgoing = UInt64(bytes[scan]) &* tops[group]
            rolling[group] = (rolling[group] &- outgoing) &* base &+ UInt64(bytes[scan + lengths[group]])
        }
        return hits
    }
}
