import NIOCore
import RunvoyKit

/// Reads a request's `params` for its method, and says what is wrong with JSON that does not fit.
enum ParamsDecoding {
    /// The params `Handler` gets from `frame`, as its `ParamsRule` says; `bad_request` (or `invalid_argument`
    /// for a well-typed value outside the allowed set) when they do not fit.
    static func params<Handler: MethodHandler>(
        of _: Handler.Type, from frame: ByteBuffer
    ) throws(RunvoyError) -> Handler.Params {
        let decoded: Handler.Params?
        switch Handler.params {
        case .ignored(let value):
            return value
        case .optional(let fallback):
            decoded = try decode(Handler.Params.self, from: frame, method: Handler.method)
            return decoded ?? fallback
        case .required(let missing):
            decoded = try decode(Handler.Params.self, from: frame, method: Handler.method)
            guard let decoded else { throw RunvoyError(.badRequest, missing) }
            return decoded
        }
    }

    private static func decode<P: Decodable & Sendable>(
        _ type: P.Type, from frame: ByteBuffer, method: String
    ) throws(RunvoyError) -> P? {
        do {
            return try frame.withUnsafeReadableBytes { try Frame.decode(ParamsContainer<P>.self, from: $0) }.params
        } catch {
            // A value of the right type that is not one of those allowed (an unknown status, say) is
            // `invalid_argument`; anything else wrong with the JSON is `bad_request`.
            let code: RunvoyError.Code = isUnknownValue(error) ? .invalidArgument : .badRequest
            throw RunvoyError(code, "bad params for '\(method)': \(brief(error))")
        }
    }

    /// What is wrong with a request's JSON, for a person: which member, and what it should be.
    static func brief(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "it is not valid JSON" }
        switch decoding {
        case .typeMismatch(let type, let context):
            return "member '\(member(context.codingPath))' must be \(describe(type))"
        case .valueNotFound(let type, let context):
            return "member '\(member(context.codingPath))' must be \(describe(type)), not null"
        case .keyNotFound(let key, let context):
            return "member '\(member(context.codingPath, key.stringValue))' is missing"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "it is not valid JSON" }
            return "member '\(member(context.codingPath))' has a value that is not allowed here"
        @unknown default:
            return "it does not have the members this method takes"
        }
    }

    /// Whether a decoding failure is a well-typed value outside the allowed set (an unknown enum case).
    static func isUnknownValue(_ error: any Error) -> Bool {
        guard case .dataCorrupted(let context)? = error as? DecodingError else { return false }
        return !context.codingPath.isEmpty
    }

    /// A member's path as a person writes it: `env.HOME`, `argv[2]`.
    private static func member(_ path: [any CodingKey], _ last: String? = nil) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        if let last { text += (text.isEmpty ? "" : ".") + last }
        return text
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt32.Type, is UInt64.Type, is UInt.Type:
            return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is RequestID.Type: return "a string or a whole number within the signed 64-bit range"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") || name.hasPrefix("[") { return "an array" }
            if name.hasPrefix("Dictionary") || (name.hasPrefix("[") && name.contains(":")) { return "an object" }
            return "of another type"
        }
    }
}
