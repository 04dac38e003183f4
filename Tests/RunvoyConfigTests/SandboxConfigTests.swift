import Testing

@testable import RunvoyConfig

/// `executors.NAME.sandbox`: every property read by its kind, and each bad value refused where it stands.
@Suite struct SandboxConfigTests {
    static func file(_ sandbox: String, extra: String = "") -> String {
        """
        executors:
          web:
            run_as: {user: nobody}
            commands: any
        \(extra)    sandbox:
        \(sandbox)
        """
    }

    func sandbox(_ body: String) throws -> SandboxConfig? {
        try ConfigLoader.parse(yaml: Self.file(body), file: "sandbox.yaml").executor(named: "web")?.sandbox
    }

    func errors(_ body: String, extra: String = "") -> [ConfigDiagnostic] {
        do {
            _ = try ConfigLoader.parse(yaml: Self.file(body, extra: extra), file: "sandbox.yaml")
            return []
        } catch {
            return error.diagnostics.filter { $0.severity == .error }
        }
    }

    @Test func anExecutorWithoutSandboxIsNotSandboxed() throws {
        let config = try ConfigLoader.parse(
            yaml: "executors: {web: {run_as: {user: nobody}, commands: any}}", file: "x.yaml")
        #expect(config.executor(named: "web")?.sandbox == nil)
        #expect(try sandbox("      {}") == SandboxConfig())
    }

    @Test func everyPropertyIsReadByItsKind() throws {
        var body = """
                  ProtectSystem: strict
                  ProtectHome: true
                  ProtectProc: invisible
                  ProcSubset: pid
                  ReadWritePaths: [/srv/app, -/var/cache/app]
                  ReadOnlyPaths: [/etc/app]
                  InaccessiblePaths: [/root]
                  CapabilityBoundingSet: [CAP_NET_BIND_SERVICE, cap_chown]
                  AmbientCapabilities: []
                  SystemCallFilter: ["~@mount", "@swap", reboot]
                  SystemCallArchitectures: [native]
                  RestrictAddressFamilies: [AF_UNIX, AF_INET]
                  UMask: "0027"

            """
        for (index, name) in SandboxCatalog.booleans.enumerated() {
            body += "      \(name): \(index % 2 == 0)\n"
        }
        let config = try #require(try sandbox(body))
        #expect(config.properties.map(\.name) == SandboxCatalog.kinds.map(\.name))
        #expect(config["ProtectSystem"] == .word("strict"))
        #expect(config["ProtectHome"] == .word("yes"))
        #expect(config["ProtectProc"] == .word("invisible"))
        #expect(config["ProcSubset"] == .word("pid"))
        #expect(config["ReadWritePaths"] == .strings(["/srv/app", "-/var/cache/app"]))
        #expect(config["ReadOnlyPaths"] == .strings(["/etc/app"]))
        #expect(config["InaccessiblePaths"] == .strings(["/root"]))
        #expect(config["CapabilityBoundingSet"] == .capabilities(1 << 10 | 1 << 0))
        #expect(config["AmbientCapabilities"] == .capabilities(0))
        #expect(config["SystemCallFilter"] == .filter(allow: false, ["@mount", "@swap", "reboot"]))
        #expect(config["SystemCallArchitectures"] == .strings(["native"]))
        #expect(config["RestrictAddressFamilies"] == .filter(allow: true, ["AF_UNIX", "AF_INET"]))
        #expect(config["UMask"] == .mode(0o027))
        for (index, name) in SandboxCatalog.booleans.enumerated() {
            #expect(config[name] == .boolean(index % 2 == 0), "\(name)")
        }
    }

    /// `true` and `false` of a word property are systemd's `yes` and `no`.
    @Test func aWordPropertysBooleansAreSystemdsYesAndNo() throws {
        #expect(try sandbox("      ProtectSystem: false")?["ProtectSystem"] == .word("no"))
        #expect(try sandbox("      ProtectHome: true")?["ProtectHome"] == .word("yes"))
    }

    @Test func theCapabilityTableIsTheKernels() {
        #expect(SandboxCatalog.capabilities.count == 41)
        #expect(SandboxCatalog.capabilities["CAP_SYS_ADMIN"] == 21)
        #expect(SandboxCatalog.capabilities["CAP_CHECKPOINT_RESTORE"] == 40)
    }

    /// Each bad value is an error at its own key path and line (the sandbox starts on line 5, its first key on 6).
    @Test(
        arguments: [
            ("ProtectSystem: readonly", "executors.web.sandbox.ProtectSystem", 6, "must be one of"),
            ("ProtectHome: [a]", "executors.web.sandbox.ProtectHome", 6, "expected a string"),
            ("PrivateTmp: maybe", "executors.web.sandbox.PrivateTmp", 6, "expected true or false"),
            ("ReadWritePaths: [/ok, relative]", "executors.web.sandbox.ReadWritePaths[1]", 6, "not an absolute"),
            ("ReadOnlyPaths: [/a/../etc]", "executors.web.sandbox.ReadOnlyPaths[0]", 6, "normalized"),
            ("InaccessiblePaths: [\"/a//b\"]", "executors.web.sandbox.InaccessiblePaths[0]", 6, "normalized"),
            ("InaccessiblePaths: /root", "executors.web.sandbox.InaccessiblePaths", 6, "expected a list"),
            ("CapabilityBoundingSet: [CAP_FLY]", "executors.web.sandbox.CapabilityBoundingSet[0]", 6, "CAP_FLY"),
            ("CapabilityBoundingSet: CAP_CHOWN", "executors.web.sandbox.CapabilityBoundingSet", 6, "expected a list"),
            ("SystemCallFilter: read", "executors.web.sandbox.SystemCallFilter", 6, "expected a list of strings"),
            (
                "SystemCallArchitectures: [native, \"x86 64\"]", "executors.web.sandbox.SystemCallArchitectures[1]", 6,
                "'x86 64' is not an architecture such as native or x86-64"
            ),
            ("SystemCallFilter: []", "executors.web.sandbox.SystemCallFilter", 6, "at least one"),
            ("SystemCallFilter: [\"@nothing\"]", "executors.web.sandbox.SystemCallFilter[0]", 6, "@groups"),
            ("SystemCallFilter: [\"open; rm\"]", "executors.web.sandbox.SystemCallFilter[0]", 6, "system call"),
            ("SystemCallFilter: [read, \"~write\"]", "executors.web.sandbox.SystemCallFilter[1]", 6, "system call"),
            ("RestrictAddressFamilies: [AF_FOO]", "executors.web.sandbox.RestrictAddressFamilies[0]", 6, "AF_UNIX"),
            ("SystemCallArchitectures: [\"~native\"]", "executors.web.sandbox.SystemCallArchitectures", 6, "'~'"),
            ("UMask: \"0999\"", "executors.web.sandbox.UMask", 6, "octal"),
            ("Environment: [A=b]", "executors.web.sandbox.Environment", 6, "unknown key 'Environment'"),
            ("ExecStart: /bin/sh", "executors.web.sandbox.ExecStart", 6, "unknown key 'ExecStart'"),
        ])
    func aBadValueIsRefusedWhereItStands(value: String, path: String, line: Int, message: String) {
        let found = errors("      " + value)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.keyPath == path)
        #expect(found.first?.line == line)
        #expect(found.first?.message.contains(message) == true, "\(found.first?.message ?? "")")
    }

    @Test func aSandboxedExecutorCannotRequireATerminal() {
        let found = errors("      PrivateTmp: true", extra: "    tty: require\n")
        #expect(found.map(\.keyPath) == ["executors.web.tty"])
        #expect(found.first?.message.contains("without a terminal") == true)
    }

    /// Review of issue 13 item 5: `runvoyctl edit` works in the daemon's mount namespace, so a sandboxed
    /// executor's ReadOnlyPaths/InaccessiblePaths did not hold for its edits.
    @Test func aSandboxedExecutorCannotHaveEditablePaths() {
        let found = errors("      ReadOnlyPaths: [/srv/app/conf]", extra: "    editable: [/srv/app]\n")
        #expect(found.map(\.keyPath) == ["executors.web.editable"])
        #expect(found.first?.message.contains("not in the sandbox") == true)
        #expect(found.first?.line == 5)
    }

    @Test func pathsAreCheckedAsSystemdNeedsThem() {
        for good in ["/", "/srv", "-/srv/app", "/a b/c"] { #expect(ConfigParser.isSandboxPath(good), "\(good)") }
        for bad in ["", "-", "srv", "/srv/", "/srv/./x", "/srv/../x", "//x", "+/x", "/x\ny"] {
            #expect(!ConfigParser.isSandboxPath(bad), "\(bad)")
        }
    }
}
