import Glibc
import NIOCore
import RunvoyKit

/// Whom a metrics connection counts against (`MetricsServer.OpenConnections`): one account, however many uids it
/// has, or one remote address.
///
/// A uid with no passwd entry is not an account of its own: an account with a subordinate uid range (useradd gives
/// each new one 65,536 in /etc/subuid) can connect from a user namespace as any of those uids, so all such uids
/// share one `unknown` account. On TCP the peer's uid is read from the kernel's socket table (/proc/net/tcp and
/// tcp6: the connecting socket's owner), so a local scraper counts as its account, and root's reserve holds there
/// too; a peer whose socket is not in the table is its remote address, or, on loopback, `unknown`.
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
        remote: SocketAddress?, local: SocketAddress?, table: (Bool) -> [UInt8]? = socketTable
    ) -> MetricsPeer {
        guard let remote, let local, let peer = Endpoint(remote), let ours = Endpoint(local) else { return .unknown }
        if peer.v6 == ours.v6, let bytes = table(peer.v6), let uid = owner(of: peer, connectedTo: ours, in: bytes) {
            return of(uid: uid)
        }
        return peer.loopback ? .unknown : .remote(remote.ipAddress ?? "\(remote)")
    }

    /// One end of a TCP connection as /proc/net/tcp{,6} prints it: the address as 8 (32) hex digits of its
    /// 32-bit words in host order, the port as 4.
    struct Endpoint: Equatable {
        var address: String
        var port: String
        var v6: Bool
        var loopback: Bool

        init(address: String, port: String, v6: Bool, loopback: Bool) {
            (self.address, self.port, self.v6, self.loopback) = (address, port, v6, loopback)
        }

        init?(_ address: SocketAddress) {
            guard let number = address.port else { return nil }
            port = Self.hex(UInt32(number), digits: 4)
            switch address {
            case .v4(let v4):
                let raw = v4.address.sin_addr.s_addr
                self.address = Self.hex(raw, digits: 8)
                (v6, loopback) = (false, UInt32(bigEndian: raw) >> 24 == 127)
            case .v6(let v6Address):
                var bytes = v6Address.address.sin6_addr
                let words = withUnsafeBytes(of: &bytes) { raw in
                    (0..<4).map { raw.load(fromByteOffset: $0 * 4, as: UInt32.self) }
                }
                let raw = withUnsafeBytes(of: &bytes) { Array($0) }
                if raw[0..<10].allSatisfy({ $0 == 0 }) && raw[10] == 0xff && raw[11] == 0xff {
                    // A v4 peer of a dual-stack listener: its socket is in /proc/net/tcp.
                    self.address = Self.hex(words[3], digits: 8)
                    (v6, loopback) = (false, raw[12] == 127)
                } else {
                    self.address = words.map { Self.hex($0, digits: 8) }.joined()
                    (v6, loopback) = (true, raw[0..<15].allSatisfy({ $0 == 0 }) && raw[15] == 1)
                }
            case .unixDomainSocket:
                return nil
            }
        }

        static func hex(_ value: UInt32, digits: Int) -> String {
            let text = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, digits - text.count)) + text
        }
    }

    /// The uid column of the line of `table` whose local end is `peer` and remote end `ours`: the owner of the
    /// socket that connected to us.
    static func owner(of peer: Endpoint, connectedTo ours: Endpoint, in table: [UInt8]) -> uid_t? {
        let (local, remote) = (peer.address + ":" + peer.port, ours.address + ":" + ours.port)
        for line in table.split(separator: UInt8(ascii: "\n")).dropFirst() {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 8)
            guard fields.count > 7, fields[1].elementsEqual(local.utf8), fields[2].elementsEqual(remote.utf8) else {
                continue
            }
            return uid_t(String(decoding: fields[7], as: UTF8.self))
        }
        return nil
    }

    /// The kernel's TCP socket table of this network namespace (at most 64 MiB of it), or nil.
    static func socketTable(v6: Bool) -> [UInt8]? {
        let fd = open(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 64 << 20 {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
        return nil
    }
}
