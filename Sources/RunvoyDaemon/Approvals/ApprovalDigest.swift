import Crypto
import RunvoyConfig
import RunvoyKit

/// What an approval binds: everything about a request that decides what will run, as the plan made it (never the
/// raw params). Two requests with the same subject are the same request; any other difference makes another.
struct ApprovalSubject: Sendable, Equatable {
    var kind = "exec"
    var requesterUid: UInt32
    var executor: String
    /// "uid:gid:user:group" of the run-as identity.
    var runAs: String
    /// The resolved path that will be executed.
    var command: String
    var argv: [String]
    var workingDirectory: String
    /// The planned environment (the executor's, the caller's, TERM); secrets' values are never in it.
    var environment: [String: String]
    var callerEnvKeys: [String]
    /// "VAR=env:NAME" and "VAR=file:NAME" of the secrets the command will receive.
    var secrets: [String]
    var terminal: Bool
    var stdin: Bool
    var timeoutMs: Int64?
    var reason: String

    /// The subject of `plan`, requested with `reason`.
    init(_ plan: ExecPlan, reason: String) {
        requesterUid = plan.caller.uid
        executor = plan.executor.name
        let identity = plan.identity.map { "\($0.uid):\($0.gid):" } ?? "self:"
        runAs = identity + plan.runAs
        command = plan.command
        argv = plan.argv
        workingDirectory = plan.workingDirectory
        environment = plan.environment
        callerEnvKeys = plan.envKeys
        secrets =
            plan.executor.secretEnvironment.map { "\($0.key)=env:\($0.value)" }
            + plan.executor.secretFiles.map { "\($0.key)=file:\($0.value)" }
        terminal = plan.terminal != nil
        stdin = plan.wantsStdin
        timeoutMs = plan.timeout.map { ExecPlan.micros($0) / 1000 }
        self.reason = reason
    }

    init(
        requesterUid: UInt32, executor: String, runAs: String, command: String, argv: [String],
        workingDirectory: String, environment: [String: String], callerEnvKeys: [String], secrets: [String],
        terminal: Bool, stdin: Bool, timeoutMs: Int64?, reason: String
    ) {
        self.requesterUid = requesterUid
        self.executor = executor
        self.runAs = runAs
        self.command = command
        self.argv = argv
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.callerEnvKeys = callerEnvKeys
        self.secrets = secrets
        self.terminal = terminal
        self.stdin = stdin
        self.timeoutMs = timeoutMs
        self.reason = reason
    }

    /// `sha256:` and 64 hex digits (see `ApprovalDigest`).
    var digest: String { ApprovalDigest.digest(fields) }

    /// The fields in their fixed order, each a list of items.
    var fields: [(String, [String])] {
        let sortedEnvironment = environment.sorted { Array($0.key.utf8).lexicographicallyPrecedes($1.key.utf8) }
        return [
            ("kind", [kind]),
            ("requester_uid", [String(requesterUid)]),
            ("executor", [executor]),
            ("run_as", [runAs]),
            ("command", [command]),
            ("argv", argv),
            ("cwd", [workingDirectory]),
            ("env", sortedEnvironment.map { "\($0.key)=\($0.value)" }),
            ("caller_env_keys", callerEnvKeys.sorted { Array($0.utf8).lexicographicallyPrecedes($1.utf8) }),
            ("secrets", secrets.sorted { Array($0.utf8).lexicographicallyPrecedes($1.utf8) }),
            ("terminal", [terminal ? "pty" : "none"]),
            ("stdin", [stdin ? "pipe" : "null"]),
            ("timeout_ms", [timeoutMs.map(String.init) ?? "none"]),
            ("reason", [reason]),
        ]
    }
}

/// The digest an approval is bound to: SHA-256 over `runvoy-approval-v1`, then each field as its name, a NUL, a
/// 32-bit big-endian count of items, and each item as a 32-bit big-endian length and its UTF-8 bytes. The
/// lengths make `["a b"]` and `["a", "b"]`, or `A=B,C` and `A=B C`, different requests.
enum ApprovalDigest {
    static let prefix = "runvoy-approval-v1"

    static func digest(_ fields: [(String, [String])]) -> String {
        var bytes = Array(prefix.utf8)
        for (name, items) in fields {
            bytes += name.utf8
            bytes.append(0)
            append(UInt32(truncatingIfNeeded: items.count), to: &bytes)
            for item in items {
                append(UInt32(truncatingIfNeeded: item.utf8.count), to: &bytes)
                bytes += item.utf8
            }
        }
        let hash = SHA256.hash(data: bytes)
        return "sha256:" + hash.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

    private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}
