/// An executor's `sandbox:`: systemd execution properties its commands run under, each execution a transient
/// service unit. Only the properties `SandboxCatalog` lists may be written, each checked by its kind; callers can
/// add none.
public struct SandboxConfig: Sendable, Equatable {
    /// The properties written, in the catalog's order.
    public var properties: [SandboxProperty] = []

    public init(properties: [SandboxProperty] = []) {
        self.properties = properties
    }

    /// The value of property `name`, if written.
    public subscript(_ name: String) -> SandboxProperty.Value? {
        properties.first { $0.name == name }?.value
    }
}

/// One systemd execution property and its value, as the D-Bus property takes it.
public struct SandboxProperty: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        /// `b`.
        case boolean(Bool)
        /// `s`: one of the words the property takes.
        case word(String)
        /// `as`: absolute paths (a leading `-`: ignored when missing), or architecture names.
        case strings([String])
        /// `t`: a capability mask.
        case capabilities(UInt64)
        /// `(bas)`: an allow-list (true) or a deny-list (false) of names.
        case filter(allow: Bool, [String])
        /// `u`: a file mode creation mask.
        case mode(UInt32)
    }

    public var name: String
    public var value: Value

    public init(name: String, value: Value) {
        self.name = name
        self.value = value
    }
}

/// The properties `sandbox:` may hold and what each one's value must be.
public enum SandboxCatalog {
    public enum Kind: Sendable, Equatable {
        case boolean
        /// One of these words (`true` and `false` among them, for properties that take a boolean too).
        case word([String])
        case paths
        case capabilities
        /// SystemCallFilter: syscall names and `@groups`.
        case syscallFilter
        /// RestrictAddressFamilies: `AF_*` names.
        case addressFamilies
        /// SystemCallArchitectures: `native` or architecture names.
        case architectures
        case mode
    }

    public static let booleans = [
        "PrivateTmp", "PrivateDevices", "PrivateNetwork", "PrivateIPC", "PrivateUsers", "NoNewPrivileges",
        "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
        "ProtectHostname", "RestrictSUIDSGID", "RestrictRealtime", "LockPersonality", "MemoryDenyWriteExecute",
    ]

    /// Every property, in the order the schema declares them and the unit gets them.
    public static let kinds: [(name: String, kind: Kind)] =
        [
            ("ProtectSystem", .word(["true", "false", "full", "strict"])),
            ("ProtectHome", .word(["true", "false", "read-only", "tmpfs"])),
            ("ProtectProc", .word(["default", "invisible", "ptraceable", "noaccess"])),
            ("ProcSubset", .word(["all", "pid"])),
        ] + booleans.map { ($0, Kind.boolean) } + [
            ("ReadWritePaths", .paths), ("ReadOnlyPaths", .paths), ("InaccessiblePaths", .paths),
            ("CapabilityBoundingSet", .capabilities), ("AmbientCapabilities", .capabilities),
            ("SystemCallFilter", .syscallFilter), ("SystemCallArchitectures", .architectures),
            ("RestrictAddressFamilies", .addressFamilies), ("UMask", .mode),
        ]

    public static func kind(of name: String) -> Kind? { kinds.first { $0.name == name }?.kind }

    /// Capability names and their bits (linux/capability.h).
    public static let capabilities: [String: Int] = Dictionary(
        uniqueKeysWithValues: [
            "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
            "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
            "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
            "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
            "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
            "CHECKPOINT_RESTORE",
        ].enumerated().map { ("CAP_" + $0.element, $0.offset) })

    /// systemd's system call groups (systemd.exec(5), "SystemCallFilter=").
    public static let syscallGroups: Set<String> = [
        "@aio", "@basic-io", "@chown", "@clock", "@cpu-emulation", "@debug", "@file-system", "@io-event", "@ipc",
        "@keyring", "@memlock", "@module", "@mount", "@network-io", "@obsolete", "@pkey", "@privileged", "@process",
        "@raw-io", "@reboot", "@resources", "@sandbox", "@setuid", "@signal", "@swap", "@sync", "@system-service",
        "@timer", "@known", "@default",
    ]

    /// Address families (linux/socket.h).
    public static let addressFamilies: Set<String> = [
        "AF_UNIX", "AF_LOCAL", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_BLUETOOTH", "AF_CAN", "AF_ALG",
        "AF_VSOCK", "AF_XDP", "AF_KEY", "AF_APPLETALK", "AF_X25", "AF_AX25", "AF_IPX", "AF_TIPC", "AF_RDS", "AF_NFC",
        "AF_SMC", "AF_MCTP", "AF_QIPCRTR", "AF_RXRPC", "AF_LLC", "AF_IB", "AF_MPLS", "AF_PPPOX", "AF_BRIDGE",
        "AF_NETROM", "AF_ROSE", "AF_DECnet", "AF_SECURITY", "AF_ATMPVC", "AF_ATMSVC", "AF_IRDA", "AF_WANPIPE",
        "AF_SNA", "AF_IUCV", "AF_PHONET", "AF_IEEE802154", "AF_CAIF", "AF_ISDN", "AF_KCM",
    ]
}
