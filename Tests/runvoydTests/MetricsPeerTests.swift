import Glibc
import NIOCore
import Testing

@testable import RunvoyDaemon

/// Whom a metrics connection counts against: an account, all uids with no passwd entry together, root, or on TCP
/// the owner of the connecting socket (from the kernel's socket table) or the peer's address.
@Suite struct MetricsPeerTests {
    static let table = Array(
        """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 ffff 100 0 0 10 0
           1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 ffff 20 4 30 10 -1
           2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 ffff 20 4 30 10 -1
           3: 0100007F:D432 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 4000000        0 4 1 ffff 20 4 30 10 -1

        """.utf8)

    @Test func endpointsArePrintedAsTheKernelPrintsThem() throws {
        let v4 = try #require(MetricsPeer.Endpoint(try SocketAddress(ipAddress: "127.0.0.1", port: 8080)))
        #expect(v4 == MetricsPeer.Endpoint(address: "0100007F", port: "1F90", v6: false, loopback: true))
        let v6 = try #require(MetricsPeer.Endpoint(try SocketAddress(ipAddress: "::1", port: 1)))
        #expect(
            v6
                == MetricsPeer.Endpoint(
                    address: "000000000000000000000000" + "01000000", port: "0001", v6: true, loopback: true))
        let mapped = try #require(MetricsPeer.Endpoint(try SocketAddress(ipAddress: "::ffff:10.1.2.3", port: 80)))
        #expect(mapped == MetricsPeer.Endpoint(address: "0302010A", port: "0050", v6: false, loopback: false))
    }

    @Test func aLocalPeerIsTheOwnerOfItsSocket() throws {
        let ours = try SocketAddress(ipAddress: "127.0.0.1", port: 8080)
        let peer = { (port: Int) in
            MetricsPeer.of(remote: try? SocketAddress(ipAddress: "127.0.0.1", port: port), local: ours) { _ in
                Self.table
            }
        }
        #expect(peer(0xD431) == MetricsPeer.of(uid: 1000))
        // A uid with no passwd entry is one of the unknown ones; a socket not in the table is unknown on loopback.
        #expect(peer(0xD432) == .unknown)
        #expect(peer(0xD433) == .unknown)
        #expect(MetricsPeer.of(uid: 0) == .root)
    }

    @Test func aRemotePeerIsItsAddressAndNoTableIsUnknown() throws {
        let ours = try SocketAddress(ipAddress: "10.0.0.1", port: 9100)
        let remote = try SocketAddress(ipAddress: "10.0.0.2", port: 40000)
        #expect(MetricsPeer.of(remote: remote, local: ours) { _ in nil } == .remote("10.0.0.2"))
        let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 40000)
        #expect(MetricsPeer.of(remote: loopback, local: ours) { _ in nil } == .unknown)
        #expect(MetricsPeer.of(remote: nil, local: ours) == .unknown)
    }

    /// Every uid with no passwd entry is one peer: together they hold `maxConnectionsPerPeer`; root keeps its
    /// reserve.
    @Test func uidsWithoutAnAccountShareOneCap() {
        let open = MetricsServer.OpenConnections()
        let unknown = (4_000_000 as uid_t)...(4_000_015 as uid_t)
        let taken = unknown.filter { open.take(MetricsPeer.of(uid: $0), limit: 64) }.count
        #expect(taken == MetricsServer.maxConnectionsPerPeer)
        open.give(.unknown)
        #expect(open.take(.unknown, limit: 64))
        #expect(!open.take(.unknown, limit: 64))
        #expect(open.take(.remote("10.0.0.2"), limit: 64))
        let rootTook = (0..<64).filter { _ in open.take(.root, limit: 64) }.count
        #expect(rootTook == 64 - 5)
    }

    /// The main socket's shares count all uids with no passwd entry as one account.
    @Test func theMainSocketCountsUIDsWithoutAnAccountTogether() {
        let stranger = Caller.resolve(uid: 4_000_001, gid: 4_000_001, pid: 1, hasPidfd: false)
        let other = Caller.resolve(uid: 4_000_002, gid: 4_000_002, pid: 1, hasPidfd: false)
        #expect(FairShares.account(of: stranger) == FairShares.account(of: other))
        #expect(FairShares.account(of: Caller.resolve(uid: 0, gid: 0, pid: 1, hasPidfd: false)) == 0)
        let nobody = Caller.resolve(uid: 65534, gid: 65534, pid: 1, hasPidfd: false)
        #expect(FairShares.account(of: nobody) == 65534)
    }
}
