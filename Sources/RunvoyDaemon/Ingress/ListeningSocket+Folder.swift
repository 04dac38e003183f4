import Glibc
import RunvoyKit

extension ListeningSocket {
    /// The folder a socket file lives in, opened once by walking to it from `/` (`walk`): it and every folder
    /// above it owned by root or the daemon's account, and writable by no group and no other account (a sticky
    /// folder such as /tmp may be on the way, never be the socket's own). Everything done to the socket file
    /// afterwards goes through this descriptor.
    struct Folder {
        let fd: Int32
        /// The socket file's name in the folder.
        let name: String
        let path: String

        /// With `create`, folders missing on the way are made (0755) as the walk reaches them.
        init(of socketPath: String, create: Bool = false) throws(SetupError) {
            let parent = Self.parent(of: socketPath)
            path = socketPath.contains("/") ? (parent.isEmpty ? "/" : parent) : "."
            name = String(socketPath.split(separator: "/", omittingEmptySubsequences: false).last ?? "")
            guard !name.isEmpty, name != ".", name != ".." else {
                throw SetupError(description: "the socket path \(socketPath) does not name a file")
            }
            fd = try Self.walk(to: path, create: create)
        }

        func close() { Glibc.close(fd) }

        static func parent(of path: String) -> String {
            path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        }

        /// Binds `fd` to the socket's name in this folder: through /proc/self/fd, so the folder that was
        /// checked is the one bound in whatever happens to the path's other components, else by path.
        func bind(_ socket: Int32, path socketPath: String) throws(SetupError) {
            let viaFolder = "/proc/self/fd/\(fd)/\(name)"
            let usable = access("/proc/self/fd/\(fd)", F_OK) == 0 ? Self.address(viaFolder) : nil
            guard var address = usable ?? Self.address(socketPath) else {
                throw SetupError(description: "the socket path \(socketPath) is too long for a Unix socket")
            }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard rc == 0 else { throw SetupError(description: "bind \(socketPath): \(SystemError.text())") }
        }

        /// Sets the socket file's group (if any), then its mode, without following a symlink at its name.
        func apply(mode: mode_t, gid: gid_t?, path socketPath: String) throws(SetupError) {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT == S_IFSOCK else {
                throw SetupError(description: "\(socketPath) is not the socket runvoyd bound; refusing to touch it")
            }
            if let gid {
                guard fchownat(fd, name, uid_t.max, gid, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw SetupError(description: "chown \(socketPath): \(SystemError.text())")
                }
            }
            // glibc needs /proc for AT_SYMLINK_NOFOLLOW here; without it, the name was a socket just above and
            // only root may write the folder.
            var rc = fchmodat(fd, name, mode, AT_SYMLINK_NOFOLLOW)
            if rc != 0 && errno == EOPNOTSUPP { rc = fchmodat(fd, name, mode, 0) }
            guard rc == 0 else { throw SetupError(description: "chmod \(socketPath): \(SystemError.text())") }
        }

        /// The `sockaddr_un` of `path`, or nil when it does not fit.
        static func address(_ path: String) -> sockaddr_un? {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            guard path.utf8.count < capacity else { return nil }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: path.utf8)
            }
            return address
        }
    }
}
