/// Every metric the daemon exposes: its name, its help text and, for histograms, its buckets. docs/CONFIGURATION.md
/// ("Metrics") lists the same names; a test keeps the two in step.
enum MetricName: String, CaseIterable, Sendable {
    case executionsStarted = "runvoyd_executions_started_total"
    case executionsFinished = "runvoyd_executions_finished_total"
    case executionsByUser = "runvoyd_executions_by_user_total"
    case refusals = "runvoyd_refusals_total"
    case auditWriteFailures = "runvoyd_audit_write_failures_total"
    case rateLimited = "runvoyd_rate_limited_total"
    case queued = "runvoyd_queued_total"
    case redactions = "runvoyd_redactions_total"
    case streamedBytes = "runvoyd_streamed_bytes_total"
    case execLatencySeconds = "runvoyd_exec_latency_seconds"
    case executionSeconds = "runvoyd_execution_duration_seconds"
    case queueWaitSeconds = "runvoyd_queue_wait_seconds"
    case auditWriteSeconds = "runvoyd_audit_write_seconds"
    case storeWriteSeconds = "runvoyd_store_write_seconds"
    case running = "runvoyd_executions_running"
    case queuedNow = "runvoyd_executions_queued"
    case connections = "runvoyd_connections"
    case uptime = "runvoyd_uptime_seconds"
    case configLoaded = "runvoyd_config_loaded_timestamp_seconds"
    case configInfo = "runvoyd_config_info"
    case buildInfo = "runvoyd_build_info"

    var help: String {
        switch self {
        case .executionsStarted: "Executions whose process started, by executor."
        case .executionsFinished: "Executions that ended, by executor and outcome."
        case .executionsByUser: "Executions started, by calling user (only with metrics.user_labels)."
        case .refusals: "Requests and connections refused, by reason (the wire error code)."
        case .auditWriteFailures: "Audit records the journal did not take in time."
        case .rateLimited: "Requests refused by a rate limit."
        case .queued: "Executions that waited in the admission queue."
        case .redactions: "Secret values taken out of command output."
        case .streamedBytes: "Bytes of command output, by stream."
        case .execLatencySeconds: "Daemon-side exec latency: request to process started."
        case .executionSeconds: "How long executions ran, by executor."
        case .queueWaitSeconds: "How long executions waited in the admission queue."
        case .auditWriteSeconds: "How long an audit record waited for the journal."
        case .storeWriteSeconds: "How long a write to the execution history took."
        case .running: "Executions running now."
        case .queuedNow: "Executions waiting in the admission queue now."
        case .connections: "Client connections open now."
        case .uptime: "Seconds since runvoyd started."
        case .configLoaded: "When the configuration in force was loaded (Unix time)."
        case .configInfo: "The digest of the configuration in force."
        case .buildInfo: "The runvoyd version."
        }
    }

    var buckets: [Duration] {
        switch self {
        case .execLatencySeconds, .storeWriteSeconds, .auditWriteSeconds:
            [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
            ]
        default:
            [
                .milliseconds(10), .milliseconds(100), .seconds(1), .seconds(10), .seconds(60), .seconds(300),
                .seconds(1800), .seconds(3600), .seconds(4 * 3600),
            ]
        }
    }
}
