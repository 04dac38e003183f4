import CRunvoyPosix
import Glibc
import NIOCore

/// Reads the kernel's credentials for the peer of an accepted Unix socket.
enum PeerCredentials {
    /// SO_PEERPIDFD, not yet in Glibc's headers here.
    static let soPeerPidfd: Int32 = 77

    /// The peer's identity, read on the channel's event loop. Fails closed: no credentials, no connection.
    static func read(from channel: any Channel) -> EventLoopFuture<Caller> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(PeerCredentialsError())
        }
        let ucred =
            provider.unsafeGetSocketOption(
                level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET),
                name: NIOBSDSocket.Option(rawValue: SO_PEERCRED)
            ) as EventLoopFuture<UCred>
        return ucred.flatMap { cred in
            // SO_PEERPIDFD only exists on newer kernels; a refusal just means no pidfd.
            let pidfd =
                provider.unsafeGetSocketOption(
                    level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET),
                    name: NIOBSDSocket.Option(rawValue: soPeerPidfd)
                ) as EventLoopFuture<Int32>
            return pidfd.map { fd -> Bool in
                if fd >= 0 { close(fd) }
                return fd >= 0
            }.recover { _ in false }.map { hasPidfd in
                Caller.resolve(uid: cred.uid, gid: cred.gid, pid: cred.pid, hasPidfd: hasPidfd)
            }
        }
    }

    /// Layout of `struct ucred`, which Swift's Glibc module does not export.
    struct UCred {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
    }

    struct PeerCredentialsError: Error, CustomStringConvertible {
        var description: String { "the kernel gave no peer credentials for this connection" }
    }
}
