import RunvoyKit

/// What `status` answers: an execution, or (for a `run-` id) a playbook run with its steps.
enum StatusReply: Codable, Sendable {
    case execution(ExecutionInfo)
    case run(PlaybookRunResult)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let run = try? container.decode(PlaybookRunResult.self) {
            self = .run(run)
        } else {
            self = .execution(try container.decode(ExecutionInfo.self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .execution(let info): try container.encode(info)
        case .run(let run): try container.encode(run)
        }
    }
}
