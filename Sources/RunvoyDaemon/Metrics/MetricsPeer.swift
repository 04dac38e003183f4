import Glibc
import NIOCore
import RunvoyKit

/// Whom a metrics connection counts against (`MetricsServer.OpenConnections`): one account, however many uids it
/// has, or one remote address.
///
/// A uid with no passwd entry is not an account of its own: an account with a subordinate uid range (useradd gives
/// each new one 65,536 in /etc/subuid) can connect from a user namespace as any of those uids, so all such uids
/// share one `unknown` account. On TCP the peer's uid is asked of the kernel (the owner of the connecting socket,
/// found by its addresses and ports through sock_diag), so a local scraper counts as its account, and root's
/// reserve holds there too; a peer whose socket is not found is its remote address, or, on loopback, `unknown`.
enum MetricsPeer: Hashable, Sendable {
    case root
    case account(uid_t)
    /// Every uid with no passwd entry, and every local peer whose owner could not be told.
    case unknown
    /// A peer elsewhere, by its address.
    case remote(String)

    /// The peer a uid is: root, an account with a passwd entry, or one of the `unknown` uids.
    static func of(uid: uid_t) -> MetricsPeer {
        if uid == 0 { return .root }
        return UserDatabase.user(uid: uid) == nil ? .unknown : .account(uid)
    }

    /// The peer of a TCP connection from `remote` to `local`.
    static func of(
        remote: SocketAddress?, local: SocketAddress?, owner: (Endpoint, Endpoint) -> uid_t? = socketOwner
    ) -> MetricsPeer {
        guard let remote, let local, let peer = Endpoint(remote), let ours = Endpoint(local) else { return .unknown }
        if peer.v6 == ours.v6, let uid = owner(peer, ours) { return of(uid: uid) }
        return peer.loopback ? .unknown : .remote(remote.ipAddress ?? "\(remote)")
    }

    /// One end of a TCP connection: its address (4 or 16 bytes, network order; a v4 address mapped into v6 is
    /// its v4 address) and port.
    struct Endpoint: Equatable {
        var address: [UInt8]
        var port: UInt16
        var v6: Bool { address.count == 16 }
        var loopback: Bool { v6 ? address == [UInt8](repeating: 0, count: 15) + [1] : address.first == 127 }

        init(address: [UInt8], port: UInt16) {
            (self.address, self.port) = (address, port)
        }

        init?(_ socketAddress: SocketAddress) {
            guard let number = socketAddress.port, let port = UInt16(exactly: number) else { return nil }
            self.port = port
            switch socketAddress {
            case .v4(let v4):
                var raw = v4.address.sin_addr
                address = withUnsafeBytes(of: &raw) { Array($0) }
            case .v6(let v6):
                var raw = v6.address.sin6_addr
                let bytes = withUnsafeBytes(of: &raw) { Array($0) }
                let mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
                address = mapped ? Array(bytes[12...]) : bytes
            case .unixDomainSocket:
                return nil
            }
        }
    }

    /// The uid owning the socket whose local end is `peer` and remote end `ours` (the socket that connected to
    /// us), asked of the kernel for that one socket (`SOCK_DIAG_BY_FAMILY` over `NETLINK_SOCK_DIAG`, as `ss`
    /// does); nil when it cannot be told. (Reading /proc/net/tcp instead costs a read of every socket of the
    /// machine, TIME_WAIT ones included, per connection: a client connecting in a loop made each accept read
    /// megabytes.)
    static func socketOwner(peer: Endpoint, ours: Endpoint) -> uid_t? {
        // SOCK_DGRAM (2) | SOCK_CLOEXEC (0o2000000), spelled out: the optimized static build (scripts/build-deb)
        // does not see Glibc's `__socket_type` names from this file.
        let fd = socket(AF_NETLINK, 2 | 0o2000000, 4)  // NETLINK_SOCK_DIAG
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var wait = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var request = diagRequest(peer: peer, ours: ours)
        guard request.withUnsafeMutableBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
            return nil
        }
        var reply = [UInt8](repeating: 0, count: 4096)
        let count = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        // nlmsghdr (16 bytes), then inet_diag_msg: its uid 64 bytes in.
        guard count >= 84 else { return nil }
        return reply.withUnsafeBytes { raw in
            raw.load(fromByteOffset: 4, as: UInt16.self) == 20 ? raw.load(fromByteOffset: 80, as: UInt32.self) : nil
        }
    }

    /// A `SOCK_DIAG_BY_FAMILY` request (nlmsghdr + inet_diag_req_v2) for the TCP socket from `peer` to `ours`.
    static func diagRequest(peer: Endpoint, ours: Endpoint) -> [UInt8] {
        var request = [UInt8](repeating: 0, count: 72)
        request.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(72), toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt16(20), toByteOffset: 4, as: UInt16.self)  // SOCK_DIAG_BY_FAMILY
            raw.storeBytes(of: UInt16(1), toByteOffset: 6, as: UInt16.self)  // NLM_F_REQUEST: one socket
            raw.storeBytes(of: UInt32(1), toByteOffset: 8, as: UInt32.self)
            raw[16] = UInt8(peer.v6 ? AF_INET6 : AF_INET)
            raw[17] = UInt8(IPPROTO_TCP)
            raw.storeBytes(of: UInt32.max, toByteOffset: 20, as: UInt32.self)  // every state
            raw.storeBytes(of: peer.port.bigEndian, toByteOffset: 24, as: UInt16.self)
            raw.storeBytes(of: ours.port.bigEndian, toByteOffset: 26, as: UInt16.self)
            for (index, byte) in peer.address.enumerated() { raw[28 + index] = byte }
            for (index, byte) in ours.address.enumerated() { raw[44 + index] = byte }
            raw.storeBytes(of: UInt64.max, toByteOffset: 64, as: UInt64.self)  // INET_DIAG_NOCOOKIE
        }
        return request
    }
}
