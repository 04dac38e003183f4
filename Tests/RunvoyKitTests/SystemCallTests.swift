import Foundation
import Glibc
import RunvoyKit
import Testing

@Suite struct SystemCallTests {
    @Test func aCallInterruptedBySignalsIsMadeAgainUntilItCompletes() {
        var calls = 0
        let result = SystemCall.retrying { () -> Int in
            calls += 1
            if calls < 4 {
                errno = EINTR
                return -1
            }
            return 7
        }
        #expect(result == 7)
        #expect(calls == 4)
    }

    @Test func anotherFailureIsReturnedAtOnceWithItsErrno() {
        var calls = 0
        let result = SystemCall.retrying { () -> Int32 in
            calls += 1
            errno = EAGAIN
            return -1
        }
        #expect(result == -1)
        #expect(errno == EAGAIN)
        #expect(calls == 1)
    }

    @Test func theThrowingFormNamesTheCallAndItsErrno() {
        #expect(throws: SystemError.self) {
            try retryingOnInterrupt("open /nonexistent/runvoy") { open("/nonexistent/runvoy", O_RDONLY) }
        }
        do {
            try retryingOnInterrupt("open /nonexistent/runvoy") { open("/nonexistent/runvoy", O_RDONLY) }
        } catch {
            #expect(error.errno == ENOENT)
            #expect(error.description == "open /nonexistent/runvoy: No such file or directory")
        }
    }

    @Test func theUserDatabaseFindsRootAndNotAnInventedName() throws {
        let root = try #require(UserDatabase.user(uid: 0))
        #expect(root.name == "root")
        #expect(UserDatabase.user(named: "root")?.uid == 0)
        #expect(UserDatabase.user(named: "no-such-user-runvoy-\(getpid())") == nil)
        #expect(UserDatabase.groupID(named: "no-such-group-runvoy-\(getpid())") == nil)
        #expect(UserDatabase.groupName(gid: 0) == "root")
    }

    /// An entry larger than the first buffer (a long GECOS field, as directories hand out) is still found: the
    /// lookup grows its buffer instead of reporting no such user. Made with useradd, removed after.
    @Test(.enabled(if: geteuid() == 0 && access("/usr/sbin/useradd", X_OK) == 0, "needs root and useradd"))
    func aUserWhoseEntryOutgrowsTheFirstBufferIsFound() throws {
        let name = "rvkit-gecos-\(getpid())"
        func run(_ arguments: [String]) throws -> Int32 {
            let process = try Process.run(
                URL(fileURLWithPath: "/usr/sbin/" + arguments[0]), arguments: Array(arguments.dropFirst()))
            process.waitUntilExit()
            return process.terminationStatus
        }
        let comment = String(repeating: "g", count: 1500)
        try #require(
            try run(["useradd", "-M", "-N", "-g", "nogroup", "-s", "/usr/sbin/nologin", "-c", comment, name]) == 0)
        defer { _ = try? run(["userdel", name]) }
        let user = try #require(UserDatabase.user(named: name))
        #expect(user.name == name && user.shell == "/usr/sbin/nologin")
        #expect(user.gid == UserDatabase.groupID(named: "nogroup"))
        #expect(UserDatabase.user(uid: user.uid) == user)
    }
}
