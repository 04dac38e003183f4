import Foundation
import Logging
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Rate limits: the token buckets (burst, refill, all or nothing, refund, bounded memory), whose rate holds whom,
/// the `rate_limited` refusal in the request layer, and the coalescing of its audit records. Time is passed in.
struct RateLimitTests {
    static let t0 = ContinuousClock.now

    static func claim(_ key: RateBuckets.Key, _ count: Int, _ period: Duration) -> RateBuckets.Claim {
        RateBuckets.Claim(key: key, count: count, period: period)
    }

    @Test func aBucketLetsItsBurstThroughThenRefillsOneTokenPerPeriodOverN() {
        var buckets = RateBuckets()
        let rate = Self.claim(.requests(1000), 3, .seconds(3600))
        for _ in 0..<3 { #expect(buckets.take([rate], now: Self.t0) == nil) }
        // Empty: the next token is 1 h / 3 away.
        #expect(buckets.take([rate], now: Self.t0) == .seconds(1200))
        #expect(buckets.take([rate], now: Self.t0 + .seconds(600)) == .seconds(600))
        #expect(buckets.take([rate], now: Self.t0 + .seconds(1200)) == nil)
        #expect(buckets.take([rate], now: Self.t0 + .seconds(1200)) != nil)
        // Never more than the burst, however long it rests.
        for _ in 0..<3 { #expect(buckets.take([rate], now: Self.t0 + .seconds(86400)) == nil) }
        #expect(buckets.take([rate], now: Self.t0 + .seconds(86400)) != nil)
        // Another user has a bucket of its own.
        #expect(buckets.take([Self.claim(.requests(1001), 3, .seconds(3600))], now: Self.t0) == nil)
    }

    @Test func severalBucketsAreTakenFromAllOrNoneAndARefundGivesBack() {
        var buckets = RateBuckets()
        let user = Self.claim(.executions(7), 5, .seconds(3600))
        let executor = Self.claim(.executor(7, "deploy"), 1, .seconds(3600))
        #expect(buckets.take([user, executor], now: Self.t0) == nil)
        #expect(buckets.take([user, executor], now: Self.t0) == .seconds(3600))
        // The refused attempt took nothing from the user's own bucket.
        #expect(buckets.tokens(user.key, count: 5, period: .seconds(3600), now: Self.t0) == 4)
        #expect(buckets.take([user], now: Self.t0) == nil)
        buckets.refund([user.key, executor.key])
        #expect(buckets.tokens(user.key, count: 5, period: .seconds(3600), now: Self.t0) == 4)
        #expect(buckets.take([user, executor], now: Self.t0) == nil)
        // A refund never fills a bucket past its size.
        buckets.refund([user.key, user.key, user.key, user.key, user.key])
        #expect(buckets.tokens(user.key, count: 5, period: .seconds(3600), now: Self.t0) == 5)
    }

    @Test func aChangedRateAppliesWithinItsOwnSize() {
        var buckets = RateBuckets()
        for _ in 0..<10 { #expect(buckets.take([Self.claim(.requests(1), 100, .seconds(60))], now: Self.t0) == nil) }
        // Reloaded to 2/1m: 90 tokens left become 2.
        let small = Self.claim(.requests(1), 2, .seconds(60))
        #expect(buckets.take([small], now: Self.t0) == nil)
        #expect(buckets.take([small], now: Self.t0) == nil)
        #expect(buckets.take([small], now: Self.t0) == .seconds(30))
    }

    /// Full buckets are dropped once the table has doubled; past the hard cap the least recently used go too.
    @Test func bucketsStayBounded() {
        var buckets = RateBuckets()
        for uid in 0..<3000 { _ = buckets.take([Self.claim(.requests(uid_t(uid)), 10, .seconds(1))], now: Self.t0) }
        #expect(buckets.count == 3000)
        let later = Self.t0 + .seconds(10)
        for uid in 3000..<6000 { _ = buckets.take([Self.claim(.requests(uid_t(uid)), 10, .seconds(1))], now: later) }
        // The first 3000 refilled and were swept; only the recent ones are left.
        #expect(buckets.count == 3000)
        var many = RateBuckets()
        for uid in 0..<70_000 { _ = many.take([Self.claim(.executions(uid_t(uid)), 5, .seconds(3600))], now: Self.t0) }
        #expect(many.count <= RateBuckets.hardCap)
    }

    // MARK: - Whose rate

    static let config = try! ConfigLoader.parse(
        yaml: """
            limits:
              request_rate: 10/1m
              rates:
                roles:
                  viewer: {request_rate: 3/1m}
                  operator: {exec_rate: unlimited}
                users:
                  nobody: {request_rate: 1/1m}
            roles:
              developer: {users: [daemon, bin, nobody]}
              viewer: {users: [daemon, nobody]}
              operator: {users: [bin]}
            executors:
              x: {run_as: {user: nobody}, commands: any}
            """, file: "r.yaml")

    static func rate(_ caller: Caller, _ kind: KeyPath<RateSettings, RateLimit?>) -> String? {
        let limits = config.limits
        let (value, name) =
            kind == \.requestRate
            ? (limits.requestRate, "limits.request_rate") : (limits.execRate, "limits.exec_rate")
        return RateLimiter.rate(kind, default: value, name, caller, Authorizer.roles(caller, config), config).map {
            "\($0.0) \($0.1)"
        }
    }

    @Test func aUsersOwnEntryWinsThenItsMostPowerfulRoleThenTheDefaultWhichSparesAdministrators() {
        let nobody = Caller.lookup(userName: "nobody")!
        let daemon = Caller.lookup(userName: "daemon")!
        let bin = Caller.lookup(userName: "bin")!
        let root = Caller.lookup(uid: 0)
        #expect(Self.rate(nobody, \.requestRate) == "1/1m limits.rates.users.nobody.request_rate")
        #expect(Self.rate(daemon, \.requestRate) == "3/1m limits.rates.roles.viewer.request_rate")
        #expect(Self.rate(daemon, \.execRate) == "600/1m limits.exec_rate")
        #expect(Self.rate(bin, \.requestRate) == "10/1m limits.request_rate")
        #expect(Self.rate(bin, \.execRate) == nil)
        #expect(Self.rate(root, \.requestRate) == nil)
        #expect(Self.rate(root, \.execRate) == nil)
    }

    @Test func theRefusalSaysWhatAndWhenAndTheClientSaysWhenToTryAgain() {
        let nobody = Caller.lookup(userName: "nobody")!
        let limiter = RateLimiter()
        #expect(limiter.takeRequest("list", caller: nobody, config: Self.config) == nil)
        // Greetings and what goes to a running execution are never metered.
        for method in ["hello", "ping", "whoami", "stdin", "signal", "resize"] {
            #expect(limiter.takeRequest(method, caller: nobody, config: Self.config) == nil)
        }
        let refused = limiter.takeRequest("status", caller: nobody, config: Self.config)
        #expect(refused?.code == .rateLimited)
        #expect(
            refused?.message
                == "too many requests from nobody: at most 1 per 1m (limits.rates.users.nobody.request_rate)")
        let wait = refused?.data?.retryAfterMs ?? 0
        #expect((1...60_000).contains(wait))
        let text = ClientError(remote: refused!).description
        #expect(text.hasSuffix(" [rate_limited]") && text.contains("; try again in "), "\(text)")
        #expect(ClientError.seconds(1) == "0.1 s" && ClientError.seconds(2345) == "2.4 s")
        #expect(ClientError.seconds(59_001) == "60 s" && ClientError.seconds(200_000) == "3 min 20 s")
    }

    @Test func theErrorsDataTravelsAsRetryAfterMs() throws {
        let error = RunvoyError(.rateLimited, "slow down", data: RunvoyError.Details(retryAfterMs: 1500))
        let text = String(decoding: try Frame.payload(Reply<NoParams>(id: .number(3), error: error)), as: UTF8.self)
        #expect(
            text == #"{"error":{"code":"rate_limited","data":{"retry_after_ms":1500},"message":"slow down"},"id":3}"#)
        let back = try Array(text.utf8).withUnsafeBytes { try Frame.decode(Reply<NoParams>.self, from: $0) }
        #expect(back.error == error)
    }

    // MARK: - Audit

    /// A flood of refusals from one caller writes its first `rate_limited` record and then one summary with the
    /// count; another caller's first refusal is recorded on its own.
    @Test func rateLimitedRecordsAreCoalescedPerCaller() {
        let throttle = RefusalThrottle(logger: Logger(label: "RateLimitTests"))
        let audit = RecordingAuditor()
        let nobody = Caller.lookup(userName: "nobody")!
        let daemon = Caller.lookup(userName: "daemon")!
        let error = RunvoyError(.rateLimited, "too many", data: RunvoyError.Details(retryAfterMs: 5))
        for _ in 0..<500 {
            throttle.recordRateLimited(
                RateLimiter.record(error, caller: nobody, method: "list"), caller: nobody, audit: audit)
        }
        throttle.recordRateLimited(
            RateLimiter.record(error, caller: daemon, method: "exec", executor: "x"), caller: daemon, audit: audit)
        #expect(audit.events.count == 2)
        #expect(audit.events.allSatisfy { $0.kind == .rateLimited })
        let first = Dictionary(audit.events[0].fields) { $1 }
        #expect(first["METHOD"] == "list" && first["RETRY_AFTER_MS"] == "5" && first["CALLER_USER"] == "nobody")
        #expect(Dictionary(audit.events[1].fields) { $1 }["EXECUTOR"] == "x")
        throttle.flush(all: true, audit: audit)
        #expect(audit.events.count == 3)
        let summary = Dictionary(audit.events[2].fields) { $1 }
        #expect(audit.events[2].kind == .rateLimited)
        #expect(summary["SUPPRESSED"] == "499" && summary["CALLER_USER"] == "nobody")
        // The next window starts afresh.
        throttle.recordRateLimited(
            RateLimiter.record(error, caller: nobody, method: "list"), caller: nobody, audit: audit)
        #expect(audit.events.count == 4)
    }

    /// In the request layer: the refusal comes before any work (no `request_denied` record even for a caller with
    /// no role), carries `retry_after_ms`, and is audited as `rate_limited`.
    @Test func theRouterRefusesBeforeAnyWork() async throws {
        let yaml = RouterTests.noRoleYAML + "\nlimits:\n  request_rate: 1/1d\n"
        try await InProcessConnection.with(caller: RouterTests.nobody, yaml: yaml) { connection in
            _ = await connection.call(#"{"v":1,"id":1,"method":"list"}"#)
            #expect(connection.auditor.events.map(\.kind) == [.requestDenied])
            let refused = await connection.call(#"{"v":1,"id":2,"method":"list"}"#)
            #expect(refused.hasPrefix(#"{"error":{"code":"rate_limited","data":{"retry_after_ms":"#), "\(refused)")
            #expect(refused.contains(#"at most 1 per 1d (limits.request_rate)"#), "\(refused)")
            #expect(connection.auditor.events.map(\.kind) == [.requestDenied, .rateLimited])
            // Greetings still work.
            await connection.expectReply(
                to: #"{"v":1,"id":"p","method":"ping"}"#, #"{"id":"p","result":{"pong":true}}"#)
        }
    }

    /// Every frame takes from the request bucket before it is answered: a frame that is not a request, an
    /// unknown method, a `signal` or `resize` by id. A flood of them is refused with `rate_limited` (audited once,
    /// coalesced), not answered for free. (Before, each was answered and none was counted.)
    @Test func everyFrameIsMeteredBeforeItIsAnswered() async throws {
        let frames = [
            "{not json", #"{"id":1,"method":"hello"}"#, #"{"v":1,"id":2,"method":"format_disk"}"#,
            #"{"v":1,"id":3,"method":"signal","params":{"signal":"TERM","execution_id":"01nosuch"}}"#,
            #"{"v":1,"id":4,"method":"resize","params":{"rows":24,"cols":80,"execution_id":"01nosuch"}}"#,
        ]
        for frame in frames {
            let yaml = RouterTests.developerYAML + "\nlimits:\n  request_rate: 3/1d\n"
            try await InProcessConnection.with(caller: RouterTests.nobody, yaml: yaml) { connection in
                var replies: [String] = []
                let began = ContinuousClock.now
                for _ in 0..<20 { replies.append(await connection.call(frame)) }
                // Coalesced to one record per caller and minute: one, unless a loaded machine took the 20 calls
                // across a minute's boundary.
                let windows = Int((ContinuousClock.now - began).components.seconds / 60) + 2
                #expect(replies.prefix(3).allSatisfy { !$0.contains("rate_limited") }, "\(frame): \(replies[0])")
                #expect(
                    replies.dropFirst(3).allSatisfy { $0.contains(#""code":"rate_limited""#) },
                    "\(frame): \(replies[3])")
                let recorded = connection.auditor.events.filter { $0.kind == .rateLimited }.count
                #expect(recorded >= 1 && recorded <= min(windows, 17), "\(frame): \(recorded) records")
                // Greetings still go free.
                await connection.expectReply(
                    to: #"{"v":1,"id":"p","method":"ping"}"#, #"{"id":"p","result":{"pong":true}}"#)
            }
        }
    }

    /// `stdin`, `signal` and `resize` go free only for an execution attached to the connection (or input for one
    /// it is the attached writer of): with none attached, they are metered like any request, so a flood of them
    /// (each refused with `invalid_state`) is not answered for free. (Before, `stdin` with nothing attached was.)
    @Test func inputSignalsAndResizesWithNoExecutionAttachedAreMetered() async throws {
        let frames = [
            #"{"v":1,"id":1,"method":"stdin","params":{"data":"eA=="}}"#,
            #"{"v":1,"id":2,"method":"stdin","params":{"data":"eA==","execution_id":"01nosuch"}}"#,
            #"{"v":1,"id":3,"method":"signal","params":{"signal":"TERM"}}"#,
            #"{"v":1,"id":4,"method":"resize","params":{"rows":24,"cols":80}}"#,
        ]
        for frame in frames {
            let yaml = RouterTests.developerYAML + "\nlimits:\n  request_rate: 3/1d\n"
            try await InProcessConnection.with(caller: RouterTests.nobody, yaml: yaml) { connection in
                var replies: [String] = []
                for _ in 0..<6 { replies.append(await connection.call(frame)) }
                #expect(replies.prefix(3).allSatisfy { !$0.contains("rate_limited") }, "\(frame): \(replies[0])")
                #expect(
                    replies.dropFirst(3).allSatisfy { $0.contains(#""code":"rate_limited""#) },
                    "\(frame): \(replies[3])")
            }
        }
    }
}
