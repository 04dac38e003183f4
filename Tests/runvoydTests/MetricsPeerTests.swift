import Glibc
import NIOCore
import Testing

@testable import RunvoyDaemon

/// Whom a metrics connection counts against: an account, all uids with no passwd entry together, root, or on TCP
/// the owner of the connecting socket (asked of the kernel through sock_diag) or the peer's address.
@Suite struct MetricsPeerTests {
    @Test func endpointsAreAddressBytesAndPorts() throws {
        let v4 = try #require(MetricsPeer.Endpoint(try SocketAddress(ipAddress: "127.0.0.1", port: 8080)))
        #expect(v4 == MetricsPeer.Endpoint(address: [127, 0, 0, 1], port: 8080) && v4.loopback && !v4.v6)
        let v6 = try #require(MetricsPeer.Endpoint(try SocketAddress(ipAddress: "::1", port: 1)))
        #expect(v6.address == [UInt8](repeating: 0, count: 15) + [1] && v6.loopback && v6.v6)
        let mapped = try #require(MetricsPeer.Endpoint(try SocketAddress(ipAddress: "::ffff:10.1.2.3", port: 80)))
        #expect(mapped == MetricsPeer.Endpoint(address: [10, 1, 2, 3], port: 80) && !mapped.loopback)
    }

    /// The request asks for the one socket whose local end is the peer and remote end ours.
    @Test func theKernelIsAskedForOneSocket() {
        let request = MetricsPeer.diagRequest(
            peer: .init(address: [127, 0, 0, 1], port: 0xD431), ours: .init(address: [127, 0, 0, 2], port: 0x1F90))
        #expect(request.count == 72)
        #expect(Array(request[24..<28]) == [0xD4, 0x31, 0x1F, 0x90])
        #expect(Array(request[28..<32]) == [127, 0, 0, 1] && Array(request[44..<48]) == [127, 0, 0, 2])
        #expect(request[16] == UInt8(AF_INET) && request[17] == UInt8(IPPROTO_TCP))
    }

    @Test func aLocalPeerIsTheOwnerOfItsSocket() throws {
        let ours = try SocketAddress(ipAddress: "127.0.0.1", port: 8080)
        let owners: [UInt16: uid_t] = [0xD431: 65534, 0xD432: 4_000_000]
        let peer = { (port: Int) in
            MetricsPeer.of(remote: try? SocketAddress(ipAddress: "127.0.0.1", port: port), local: ours) { peer, _ in
                owners[peer.port]
            }
        }
        #expect(peer(0xD431) == MetricsPeer.of(uid: 65534))
        // A uid with no passwd entry is one of the unknown ones; a socket not found is unknown on loopback.
        #expect(peer(0xD432) == .unknown)
        #expect(peer(0xD433) == .unknown)
        #expect(MetricsPeer.of(uid: 0) == .root)
    }

    @Test func aRemotePeerIsItsAddressAndNoTableIsUnknown() throws {
        let ours = try SocketAddress(ipAddress: "10.0.0.1", port: 9100)
        let remote = try SocketAddress(ipAddress: "10.0.0.2", port: 40000)
        #expect(MetricsPeer.of(remote: remote, local: ours) { _, _ in nil } == .remote("10.0.0.2"))
        let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 40000)
        #expect(MetricsPeer.of(remote: loopback, local: ours) { _, _ in nil } == .unknown)
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

    /// A real loopback connection: the kernel finds the connecting socket, and it is this process's.
    @Test func aRealLoopbackPeerIsItsSocketsOwner() throws {
        func address(_ fd: Int32, peer: Bool) throws -> SocketAddress {
            var raw = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let rc = withUnsafeMutablePointer(to: &raw) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length)
                }
            }
            try #require(rc == 0)
            return SocketAddress(raw, host: "")
        }
        let server = socket(AF_INET, SocketKind.stream, 0)
        defer { close(server) }
        var any = sockaddr_in()
        any.sin_family = sa_family_t(AF_INET)
        any.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &any) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(bound == 0 && listen(server, 4) == 0)
        var target = try address(server, peer: false)
        let client = socket(AF_INET, SocketKind.stream, 0)
        defer { close(client) }
        let connected = target.withSockAddr { connect(client, $0, socklen_t($1)) }
        try #require(connected == 0)
        let accepted = accept(server, nil, nil)
        defer { close(accepted) }
        target = try address(accepted, peer: false)
        let remote = try address(accepted, peer: true)
        #expect(MetricsPeer.of(remote: remote, local: target) == MetricsPeer.of(uid: geteuid()))
    }
}
