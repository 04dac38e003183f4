import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Sandboxed executors without systemd: what a unit is made of (its properties and their D-Bus types, as
/// systemd's bus-unit-util.c appends them), its environment file, and the refusal where units cannot be started.
struct UnitRecipeTests {
    static let config = """
        executors:
          web:
            run_as: {user: nobody, group: nogroup}
            commands: any
            leftovers: wait
            limits: {memory_max: 64MiB, cpu_quota: 150, tasks_max: 32, io_weight: 50}
            rlimits: {nofile: 1024, core: unlimited}
            sandbox:
              ProtectSystem: strict
              PrivateTmp: true
              ReadWritePaths: [/srv]
              CapabilityBoundingSet: [CAP_NET_BIND_SERVICE]
              SystemCallFilter: ["~@mount"]
              RestrictAddressFamilies: [AF_UNIX]
              UMask: "0077"
        """

    static func executor() throws -> ExecutorConfig {
        try #require(try ConfigLoader.parse(yaml: config, file: "unit.yaml").executor(named: "web"))
    }

    static func recipe() throws -> UnitRecipe {
        UnitRecipe(
            executionID: "01ABC", executorName: "web", path: "/bin/echo", argv: ["echo", "hi"],
            workingDirectory: "/srv", runAs: RunAs(user: "nobody", group: "nogroup"), stdio: (3, 4, 5),
            environmentFile: "/run/runvoy/secrets/01ABC.env", executor: try executor())
    }

    @Test func theUnitCarriesTheCommandItsStreamsAndTheExecutorsSettings() throws {
        let properties = try Self.recipe().properties
        let byName = Dictionary(properties.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(UnitRecipe.unitName("01ABC") == "runvoy-01ABC.service")
        #expect(byName["Slice"] == .string("Slice", "runvoy.slice"))
        #expect(byName["Type"] == .string("Type", "exec"))
        #expect(byName["AddRef"] == .boolean("AddRef", true))
        #expect(byName["CollectMode"] == .string("CollectMode", "inactive-or-failed"))
        #expect(byName["ExecStart"] == .execStart(path: "/bin/echo", argv: ["echo", "hi"]))
        #expect(byName["User"] == .string("User", "nobody"))
        #expect(byName["Group"] == .string("Group", "nogroup"))
        #expect(byName["WorkingDirectory"] == .string("WorkingDirectory", "/srv"))
        #expect(byName["StandardInputFileDescriptor"] == .fileDescriptor("StandardInputFileDescriptor", 3))
        #expect(byName["StandardOutputFileDescriptor"] == .fileDescriptor("StandardOutputFileDescriptor", 4))
        #expect(byName["StandardErrorFileDescriptor"] == .fileDescriptor("StandardErrorFileDescriptor", 5))
        #expect(byName["EnvironmentFiles"] == .environmentFile("/run/runvoy/secrets/01ABC.env"))
        #expect(byName["ExitType"] == .string("ExitType", "cgroup"))
        #expect(byName["KillSignal"] == nil)
        #expect(byName["MemoryMax"] == .uint64("MemoryMax", 64 << 20))
        #expect(byName["CPUQuotaPerSecUSec"] == .uint64("CPUQuotaPerSecUSec", 1_500_000))
        #expect(byName["TasksMax"] == .uint64("TasksMax", 32))
        #expect(byName["IOWeight"] == .uint64("IOWeight", 50))
        #expect(byName["LimitNOFILE"] == .uint64("LimitNOFILE", 1024))
        #expect(byName["LimitCORE"] == .uint64("LimitCORE", UInt64.max))
        #expect(byName["ProtectSystem"] == .string("ProtectSystem", "strict"))
        #expect(byName["PrivateTmp"] == .boolean("PrivateTmp", true))
        #expect(byName["ReadWritePaths"] == .strings("ReadWritePaths", ["/srv"]))
        #expect(byName["CapabilityBoundingSet"] == .uint64("CapabilityBoundingSet", 1 << 10))
        #expect(byName["SystemCallFilter"] == .filter("SystemCallFilter", allow: false, ["@mount"]))
        #expect(byName["RestrictAddressFamilies"] == .filter("RestrictAddressFamilies", allow: true, ["AF_UNIX"]))
        #expect(byName["UMask"] == .uint32("UMask", 0o077))
        // No value of the environment is a property (every user can read properties over D-Bus).
        #expect(byName["Environment"] == nil)
        #expect(Set(properties.map(\.name)).count == properties.count, "a property twice")
    }

    @Test func leftoversKillIsSIGKILLWhenTheMainProcessExits() throws {
        var executor = try Self.executor()
        executor.leftovers = .kill
        var recipe = try Self.recipe()
        recipe.executor = executor
        let names = recipe.properties.map(\.name)
        #expect(recipe.properties.contains(.int32("KillSignal", SIGKILL)))
        #expect(!names.contains("ExitType"))
    }

    @Test func eachPropertyHasTheDBusTypeSystemdTakes() {
        let cases: [(UnitProperty, String)] = [
            (.boolean("PrivateTmp", true), "b"), (.string("ProtectSystem", "strict"), "s"),
            (.uint64("MemoryMax", 1), "t"), (.uint32("UMask", 0o22), "u"), (.int32("KillSignal", 9), "i"),
            (.strings("ReadWritePaths", []), "as"), (.filter("SystemCallFilter", allow: true, []), "(bas)"),
            (.fileDescriptor("StandardInputFileDescriptor", 0), "h"), (.execStart(path: "/x", argv: ["x"]), "a(sasb)"),
            (.environmentFile("/e"), "a(sb)"),
        ]
        for (property, signature) in cases { #expect(property.signature == signature, "\(property.name)") }
    }

    /// systemd's environment-file parser, in double quotes, keeps every byte but takes `\` as an escape: the
    /// four characters it escapes are written after one; newlines and quotes of the other kind stay as they are.
    @Test func theEnvironmentFileQuotesWhatSystemdWouldReadOtherwise() {
        let text = UnitEnvironment.text(["B": "plain", "A": "$HOME `id` \\n \"q\" 'single'\nsecond line"])
        #expect(text == "A=\"\\$HOME \\`id\\` \\\\n \\\"q\\\" 'single'\nsecond line\"\nB=\"plain\"\n")
    }

    @Test func theEnvironmentFileIsRootsAlone() throws {
        var template = Array("/tmp/runvoy-unitenv-XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { FileSystem.removeTree(directory) }
        let path = directory + "/x.env"
        try UnitEnvironment.write(["TOKEN": "s3cret"], to: path)
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(info.st_uid == geteuid())
        // Never over an existing file (or a link put there).
        #expect(throws: SystemError.self) { try UnitEnvironment.write(["A": "b"], to: path) }
    }

    /// Without systemd, not as root, or without a bus: a sandboxed execution is refused, never run unsandboxed.
    @Test func withoutUnitsASandboxedExecutionIsRefused() async throws {
        let cases: [(UnitContainment, String)] = [
            (UnitContainment(booted: false, root: true, cgroupMount: "/sys/fs/cgroup"), "not the service manager"),
            (UnitContainment(booted: true, root: false, cgroupMount: "/sys/fs/cgroup"), "not root"),
            (UnitContainment(booted: true, root: true, cgroupMount: nil), "no cgroup v2"),
            (
                UnitContainment(
                    booted: true, root: true, cgroupMount: "/sys/fs/cgroup",
                    connect: { .failure(SystemdBus.Failure(message: "No such file or directory")) }),
                "the system bus: No such file or directory"
            ),
        ]
        let request = SpawnRequest(
            path: "/bin/true", argv: ["true"], environment: [:], workingDirectory: "/", identity: nil,
            stdinPipe: false)
        let executor = try Self.executor()
        for (units, reason) in cases {
            do throws(SpawnError) {
                _ = try await units.start(
                    request, executionID: "01X", executor: executor, runtimeDirectory: "/nonexistent")
                Issue.record("started without units")
            } catch {
                #expect(error.code == .sandboxUnavailable)
                #expect(error.wireError.code == .spawnFailed)
                #expect(error.wireError.reason == "sandbox_unavailable")
                #expect(error.wireError.message.contains(reason), "\(error.wireError.message)")
            }
            #expect(units.unavailableReason?.contains(reason) == true)
            #expect(units.summary([executor], detail: true)?.hasPrefix("sandboxed executors refused (web)") == true)
            #expect(units.recoverLost().isEmpty)
        }
    }
}

extension UnitRecipeTests {
    /// A sandboxed executor's limits are its unit's (systemd enforces them whatever the daemon's own containment):
    /// start-up does not call them unenforced under the subreaper.
    @Test func aSandboxedExecutorsLimitsAreNotCalledUnenforced() throws {
        var config = try ConfigLoader.parse(yaml: Self.config, file: "unit.yaml")
        #expect(ContainmentSelection.unenforced(config, mode: .subreaper).isEmpty)
        config.executors[0].sandbox = nil
        #expect(ContainmentSelection.unenforced(config, mode: .subreaper).count == 1)
    }
}
