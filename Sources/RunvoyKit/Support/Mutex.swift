import Glibc

/// A value guarded by a lock, with the API of the standard library's `Synchronization.Mutex`.
///
/// runvoy uses this one instead: on Linux the standard library's Mutex waits in the kernel (a priority-inheriting
/// futex) where ThreadSanitizer cannot see it, so every contended `withLock` is reported as a race and the
/// sanitizer runs (`scripts/sanitize thread`) would be useless. This one is a `pthread_mutex_t`, which the
/// sanitizers intercept; uncontended it costs the same (one atomic exchange each way).
public final class Mutex<Value: ~Copyable>: @unchecked Sendable {
    // @unchecked: `value` is only reached through `withLock`, which holds `lock` for the whole access.
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ initialValue: consuming sending Value) {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
        value = initialValue
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// Runs `body` with the value while holding the lock.
    public func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
