import Glibc

/// Token buckets, one per user and kind: a pure state machine (the owner passes the time). A bucket for `N/PERIOD`
/// holds up to N tokens and refills N per period; each request or execution takes one. A full bucket is the same
/// as none, so full buckets are dropped whenever the table has doubled since the last sweep; past `hardCap` the
/// least recently used go too (which can only let someone through early, never hold anyone back).
struct RateBuckets: Sendable {
    enum Key: Hashable, Sendable {
        case requests(uid_t)
        case executions(uid_t)
        case executor(uid_t, String)
    }

    /// A bucket to take from: which, and its rate.
    struct Claim: Sendable {
        var key: Key
        var count: Int
        var period: Duration
    }

    private struct Bucket: Sendable {
        var tokens: Double
        var updated: ContinuousClock.Instant
        var count: Int
        var period: Duration
    }

    static let hardCap = 65_536
    static let firstSweep = 1024

    private var buckets: [Key: Bucket] = [:]
    private var sweepAt = Self.firstSweep

    var count: Int { buckets.count }

    /// Takes one token from every claim's bucket, or none; nil when taken, else how long until each of them holds
    /// a token again.
    mutating func take(_ claims: [Claim], now: ContinuousClock.Instant) -> Duration? {
        var refilled: [(Key, Bucket)] = []
        var wait = Duration.zero
        for claim in claims {
            let bucket = refill(claim, now: now)
            if bucket.tokens < 1 {
                wait = max(wait, claim.period * ((1 - bucket.tokens) / Double(claim.count)))
            }
            refilled.append((claim.key, bucket))
        }
        for (key, var bucket) in refilled {
            if wait == .zero { bucket.tokens -= 1 }
            buckets[key] = bucket
        }
        bound(now: now)
        return wait == .zero ? nil : max(wait, .milliseconds(1))
    }

    /// Gives back a token taken for something that did not happen after all.
    mutating func refund(_ keys: [Key]) {
        for key in keys {
            guard var bucket = buckets[key] else { continue }
            bucket.tokens = min(Double(bucket.count), bucket.tokens + 1)
            buckets[key] = bucket
        }
    }

    /// The tokens `key`'s bucket holds at `now` (full when there is none), for tests.
    func tokens(_ key: Key, count: Int, period: Duration, now: ContinuousClock.Instant) -> Double {
        buckets[key] == nil ? Double(count) : refill(Claim(key: key, count: count, period: period), now: now).tokens
    }

    private func refill(_ claim: Claim, now: ContinuousClock.Instant) -> Bucket {
        guard var bucket = buckets[claim.key] else {
            return Bucket(tokens: Double(claim.count), updated: now, count: claim.count, period: claim.period)
        }
        let elapsed = max(.zero, now - bucket.updated)
        // A reload may have changed the rate: the new one applies from now, within its own size.
        bucket.count = claim.count
        bucket.period = claim.period
        bucket.tokens = min(Double(claim.count), bucket.tokens + Double(claim.count) * (elapsed / claim.period))
        bucket.updated = now
        return bucket
    }

    private mutating func bound(now: ContinuousClock.Instant) {
        guard buckets.count > sweepAt else { return }
        buckets = buckets.filter { key, bucket in
            refill(Claim(key: key, count: bucket.count, period: bucket.period), now: now).tokens < Double(bucket.count)
        }
        if buckets.count > Self.hardCap {
            let keep = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(Self.hardCap / 2)
            buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
        sweepAt = max(Self.firstSweep, buckets.count * 2)
    }
}
