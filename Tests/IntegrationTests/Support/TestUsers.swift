/// Real Unix users made for a test (no home, group nogroup, no login shell) and removed after it.
enum TestUsers {
    static func add(_ names: [String]) throws {
        for name in names { try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(name)") }
    }

    static func remove(_ names: [String]) {
        for name in names { try? AuthorizationTests.sh("userdel \(name)") }
    }
}
