/// Params of `trace`: exactly one of `execution_id` and `request_id`, and at most `limit` records.
public struct TraceParams: Codable, Sendable, Equatable {
    public var executionId: String?
    /// The `id` of the request that started an execution (as the `REQUEST_ID` field of its records holds it).
    public var requestId: String?
    public var limit: Int?

    public init(executionId: String? = nil, requestId: String? = nil, limit: Int? = nil) {
        self.executionId = executionId
        self.requestId = requestId
        self.limit = limit
    }

    /// The most records one `trace` returns, and the default.
    public static let maximumLimit = 1000

    enum CodingKeys: String, CodingKey {
        case limit
        case executionId = "execution_id"
        case requestId = "request_id"
    }
}

/// One journal record of the daemon's, as `trace` returns it.
public struct TraceRecord: Codable, Sendable, Equatable {
    /// When the journal received it (`__REALTIME_TIMESTAMP`, microseconds since the epoch).
    public var timeUsec: Int64
    /// `RUNVOY_EVENT`: `exec_allowed`, `execution_started`, `execution_finished`, ….
    public var event: String?
    public var message: String
    public var priority: Int?
    /// The record's `MESSAGE_ID` and `RUNVOY_*` fields, by name.
    public var fields: [String: String]

    public init(timeUsec: Int64, event: String?, message: String, priority: Int?, fields: [String: String]) {
        self.timeUsec = timeUsec
        self.event = event
        self.message = message
        self.priority = priority
        self.fields = fields
    }

    enum CodingKeys: String, CodingKey {
        case event, message, priority, fields
        case timeUsec = "time_usec"
    }
}

/// Result of `trace`: the records in journal order, and whether there were more than were returned.
public struct TraceResult: Codable, Sendable, Equatable {
    public var records: [TraceRecord]
    public var truncated: Bool

    public init(records: [TraceRecord], truncated: Bool) {
        self.records = records
        self.truncated = truncated
    }
}
