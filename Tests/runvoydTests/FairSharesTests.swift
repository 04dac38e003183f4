import Glibc
import RunvoyConfig
import Testing

@testable import RunvoyDaemon

/// The fair shares of connections and executions, as a pure value.
@Suite struct FairSharesTests {
    let limits = FairShares.Limits(total: 10, reserved: 2, perUser: 3, perUserWithoutRole: 1)

    @Test func aUserHoldsAtMostItsShare() {
        var shares = FairShares()
        for _ in 0..<3 { #expect(shares.take(1000, as: .member, within: limits) == nil) }
        #expect(shares.take(1000, as: .member, within: limits) == .userShare(limit: 3))
        #expect(shares.take(1001, as: .noRole, within: limits) == nil)
        #expect(shares.take(1001, as: .noRole, within: limits) == .userShare(limit: 1))
        #expect(shares.total == 4 && shares.held(by: 1000) == 3)
        shares.give(1000)
        #expect(shares.take(1000, as: .member, within: limits) == nil)
    }

    @Test func theReserveIsForAdministratorsOnly() {
        var shares = FairShares()
        for uid in 2000..<2008 { #expect(shares.take(uid_t(uid), as: .member, within: limits) == nil) }
        #expect(shares.take(2009, as: .member, within: limits) == .reserved(limit: 10, reserved: 2))
        #expect(shares.take(0, as: .admin, within: limits) == nil)
        #expect(shares.take(0, as: .admin, within: limits) == nil)
        #expect(shares.take(0, as: .admin, within: limits) == .full(limit: 10))
        shares.give(0)
        shares.give(0)
        for uid in 2000..<2008 { shares.give(uid_t(uid)) }
        #expect(shares == FairShares())
    }

    /// Random takes and gives: the total never passes the ceiling, non-administrators never pass the ceiling
    /// less the reserve nor their share, and giving everything back leaves nothing held.
    @Test func randomTakesNeverPassTheCeilings() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var shares = FairShares()
            var held: [(uid_t, FairShares.Holder)] = []
            for _ in 0..<200 {
                if !held.isEmpty && Bool.random(using: &generator) {
                    let (uid, _) = held.remove(at: Int.random(in: 0..<held.count, using: &generator))
                    shares.give(uid)
                    continue
                }
                let uid = uid_t.random(in: 0..<5, using: &generator)
                let holder: FairShares.Holder = uid == 0 ? .admin : uid == 4 ? .noRole : .member
                let mine = held.filter { $0.0 == uid }.count
                let share = holder == .noRole ? 1 : 3
                let expected =
                    held.count >= limits.total
                    || (holder != .admin && (held.count >= limits.total - limits.reserved || mine >= share))
                let denial = shares.take(uid, as: holder, within: limits)
                #expect((denial != nil) == expected)
                if denial == nil { held.append((uid, holder)) }
                #expect(shares.total == held.count && shares.total <= limits.total)
            }
            for (uid, _) in held { shares.give(uid) }
            #expect(shares == FairShares())
        }
    }

    static let executor = "executors:\n  e:\n    run_as: {user: nobody}\n    commands: any\n"

    /// Left out, a share or a reserve is at most a quarter of its ceiling, so an old configuration with a small
    /// ceiling keeps working and leaves room for several users; written as large as its ceiling, a reserve is an
    /// error.
    @Test func sharesAndReservesFollowTheirCeilings() throws {
        let small = try ConfigLoader.parse(
            yaml: "limits:\n  max_connections: 3\n  max_executions: 8\n" + Self.executor, file: "t.yaml")
        #expect(small.limits.maxConnectionsPerUser == 1 && small.limits.reservedAdminConnections == 0)
        #expect(small.limits.maxExecutionsPerUser == 2 && small.limits.reservedAdminExecutions == 2)
        let defaults = try ConfigLoader.parse(yaml: Self.executor, file: "t.yaml")
        #expect(defaults.limits.maxConnectionsPerUser == 64 && defaults.limits.maxConnectionsWithoutRole == 4)
        #expect(defaults.limits.reservedAdminConnections == 16 && defaults.limits.reservedAdminExecutions == 8)
        #expect(defaults.limits.maxExecutionsPerUser == 32)
        do throws(ConfigError) {
            _ = try ConfigLoader.parse(
                yaml: "limits:\n  max_executions: 8\n  reserved_admin_executions: 8\n" + Self.executor, file: "t.yaml")
            Issue.record("a reserve as large as its ceiling was accepted")
        } catch {
            #expect(error.diagnostics.contains { $0.keyPath == "limits.reserved_admin_executions" && $0.line == 3 })
        }
    }
}
