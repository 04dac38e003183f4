#if canImport(Glibc)
    import Glibc
#endif

/// Comparisons and clearing for secret bytes.
public enum ConstantTime {
    /// Whether `a` and `b` hold the same bytes, in a time that depends on their lengths only, never on where
    /// they differ (buffers of different lengths are unequal at once: lengths are not secret here).
    public static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<a.count { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Overwrites `buffer` with zeros in a way the compiler does not drop as a dead store (`explicit_bzero`).
    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        explicit_bzero(base, buffer.count)
    }
}
