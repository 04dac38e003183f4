/// Socket types spelled out for the tests of this target. With CSystemd's sd-bus header among this target's
/// imports, Glibc's `SOCK_STREAM`/`SOCK_DGRAM` are not found from files that do not import CSystemd in a clean
/// build (which files depends on the order modules are built in), as MetricsPeer found in the release build.
enum SocketKind {
    static let stream: Int32 = 1
    static let datagram: Int32 = 2
}
