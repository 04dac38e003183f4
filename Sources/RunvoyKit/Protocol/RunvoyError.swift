/// An error as it travels on the wire: a stable machine `code` and a human `message`.
public struct RunvoyError: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    /// A stable, machine-readable error code. New codes may be added; existing ones never change meaning.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The frame's length header exceeds the receiver's maximum.
        public static let frameTooLarge = Code(rawValue: "frame_too_large")
        /// The frame is not a JSON object, or a field is missing or has the wrong type.
        public static let badRequest = Code(rawValue: "bad_request")
        /// The method is not known to this daemon.
        public static let unknownMethod = Code(rawValue: "unknown_method")
        /// The request's `v` is not a protocol version the daemon speaks.
        public static let unsupportedVersion = Code(rawValue: "unsupported_version")
        /// The caller may not do this.
        public static let permissionDenied = Code(rawValue: "permission_denied")
        /// No executor has the requested name.
        public static let noSuchExecutor = Code(rawValue: "no_such_executor")
        /// The executor does not accept this command.
        public static let commandNotAllowed = Code(rawValue: "command_not_allowed")
        /// The command could not be started.
        public static let spawnFailed = Code(rawValue: "spawn_failed")
        /// The audit record could not be written, so nothing was done.
        public static let auditUnavailable = Code(rawValue: "audit_unavailable")
        /// The connection or execution ran out of time.
        public static let timeout = Code(rawValue: "timeout")
        /// The daemon is at a configured limit (connections, executions) or shutting down.
        public static let busy = Code(rawValue: "busy")
        /// The request is valid but refers to something that is not in a state to accept it.
        public static let invalidState = Code(rawValue: "invalid_state")
        /// A request parameter has an acceptable type but an unacceptable value.
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        /// No execution has the given id, or the caller may not see it.
        public static let noSuchExecution = Code(rawValue: "no_such_execution")
        /// The execution history could not be written, so nothing was started.
        public static let storeUnavailable = Code(rawValue: "store_unavailable")
        /// An executor injects a secret that is not set, or a secret named in a request does not exist.
        public static let secretMissing = Code(rawValue: "secret_missing")
        /// The execution waited in the queue for its `wait_timeout_ms` and gave up; it never ran.
        public static let queueTimeout = Code(rawValue: "queue_timeout")
        /// The execution left the queue before it started (`cancel`, or the daemon stopped); it never ran.
        public static let cancelled = Code(rawValue: "cancelled")
        /// Something failed inside the daemon.
        public static let internalError = Code(rawValue: "internal")
        /// The caller's rate limit is used up for now; `data.retry_after_ms` says when the next one is allowed.
        public static let rateLimited = Code(rawValue: "rate_limited")
        /// `edit_save`: the file changed since `edit_open` read it, so nothing was written.
        public static let conflict = Code(rawValue: "conflict")
        /// The request for approval was denied; its command never runs.
        public static let approvalDenied = Code(rawValue: "approval_denied")
        /// The request for approval expired before it had its approvals; its command never runs.
        public static let approvalExpired = Code(rawValue: "approval_expired")
        /// A hook refused the request (a `pre_exec` or `on_approval_request` hook's veto, or its failure under
        /// `on_error: deny`); the message has the hook and its reason. The command never ran.
        public static let hookRefused = Code(rawValue: "hook_refused")
        /// No playbook has the given name.
        public static let noSuchPlaybook = Code(rawValue: "no_such_playbook")
    }

    /// Machine-readable details some codes carry.
    public struct Details: Hashable, Sendable, Codable {
        /// For `rate_limited`: in how many milliseconds the request would be allowed.
        public var retryAfterMs: Int64?

        public init(retryAfterMs: Int64? = nil) {
            self.retryAfterMs = retryAfterMs
        }

        enum CodingKeys: String, CodingKey {
            case retryAfterMs = "retry_after_ms"
        }
    }

    public var code: Code
    public var message: String
    /// A finer machine-readable reason for some codes: for `spawn_failed`, `not_found` (exit 127 in a shell),
    /// `not_executable`, `working_directory`, `identity` or `exec`.
    public var reason: String?
    /// Details for some codes (`rate_limited`: `retry_after_ms`).
    public var data: Details?

    public init(_ code: Code, _ message: String, reason: String? = nil, data: Details? = nil) {
        self.code = code
        self.message = message
        self.reason = reason
        self.data = data
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
