import RunvoyConfig
import Testing

/// `executors.NAME.locks`: names alone are exclusive, mappings may be shared; they come out sorted by name, and
/// every bad value is reported at its own line and key path.
struct LockConfigTests {
    static func executor(_ locks: String) -> String {
        "executors:\n  web:\n    run_as: {user: nobody}\n    locks: \(locks)\n    commands: any\n"
    }

    @Test func namesAndMappingsParseSortedByName() throws {
        let config = try ConfigLoader.parse(
            yaml: Self.executor("[terraform-prod, {name: db, shared: true}, {name: cache.1}]"), file: "l.yaml")
        #expect(
            config.defaultExecutor.locks == [
                ExecutorLock(name: "cache.1", shared: false), ExecutorLock(name: "db", shared: true),
                ExecutorLock(name: "terraform-prod", shared: false),
            ])
        #expect(config.warnings.isEmpty)
    }

    @Test func noLocksByDefault() throws {
        let config = try ConfigLoader.parse(
            yaml: "executors:\n  web:\n    run_as: {user: nobody}\n    commands: any\n", file: "l.yaml")
        #expect(config.defaultExecutor.locks.isEmpty)
    }

    @Test func badNamesAreErrorsWhereTheyStand() {
        for (locks, path) in [
            ("[\"\"]", "executors.web.locks[0]"), ("[ok, \"Bad Name\"]", "executors.web.locks[1]"),
            ("[\"a/b\"]", "executors.web.locks[0]"), ("[{name: \"-x\"}]", "executors.web.locks[0].name"),
            ("[{name: \"\"}]", "executors.web.locks[0].name"),
            ("[\(String(repeating: "a", count: 65))]", "executors.web.locks[0]"),
        ] {
            let found = ConfigLoaderTests.diagnostics(Self.executor(locks))
            #expect(found.map(\.keyPath) == [path], "\(locks)")
            #expect(found.first?.line == 4, "\(locks)")
            #expect(found.first?.message.contains("lock names are 1-64 characters") == true, "\(locks)")
        }
    }

    @Test func otherShapesAreErrors() {
        let cases: [(String, String, String)] = [
            ("db", "executors.web.locks", "expected a list of lock names"),
            ("[[db]]", "executors.web.locks[0]", "a lock is a name, or {name: NAME, shared: true}"),
            ("[{shared: true}]", "executors.web.locks[0].name", "required: the lock's name"),
            ("[{name: db, shared: maybe}]", "executors.web.locks[0].shared", "expected true or false"),
            ("[{name: db, mode: shared}]", "executors.web.locks[0].mode", "unknown key 'mode'"),
            ("[12]", "executors.web.locks[0]", "read as a number"),
        ]
        for (locks, path, message) in cases {
            let found = ConfigLoaderTests.diagnostics(Self.executor(locks)).filter { $0.severity == .error }
            #expect(found.map(\.keyPath) == [path], "\(locks)")
            #expect(found.first?.message.contains(message) == true, "\(locks): \(found)")
        }
    }

    @Test func aLockTwiceInBothModesIsAnErrorInTheSameModeAWarning() throws {
        let found = ConfigLoaderTests.diagnostics(Self.executor("[db, {name: db, shared: true}]"))
        #expect(found.map(\.keyPath) == ["executors.web.locks[1]"])
        #expect(found.first?.line == 4)
        #expect(found.first?.message.contains("both shared and exclusive") == true)
        let config = try ConfigLoader.parse(yaml: Self.executor("[db, {name: db}]"), file: "l.yaml")
        #expect(config.defaultExecutor.locks == [ExecutorLock(name: "db", shared: false)])
        #expect(config.warnings.map(\.keyPath) == ["executors.web.locks[1]"])
        #expect(config.warnings.first?.message == "lock 'db' is listed twice")
    }

    @Test func blockStyleErrorsCarryTheirOwnLine() {
        let yaml = """
            executors:
              web:
                run_as: {user: nobody}
                locks:
                  - ok
                  - {name: db, shared: true}
                  - "not ok"
                commands: any
            """
        let found = ConfigLoaderTests.diagnostics(yaml)
        #expect(found.map(\.keyPath) == ["executors.web.locks[2]"])
        #expect(found.first?.line == 7)
    }
}
