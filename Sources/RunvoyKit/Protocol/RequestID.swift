#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The `id` of a request: a JSON string or integer, echoed verbatim in every reply and event.
public enum RequestID: Hashable, Sendable, Codable, CustomStringConvertible {
    case string(String)
    case number(Int64)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int64.self) {
            // JSONDecoder reads a number with a fraction that a Double cannot hold (4503599627370495.5) as the
            // whole number it rounds to; the exact value of the text tells the two apart.
            if let exact = try? container.decode(Decimal.self), exact != Decimal(number) {
                throw DecodingError.typeMismatch(
                    RequestID.self,
                    .init(codingPath: decoder.codingPath, debugDescription: "a string or a whole number within 64 bits")
                )
            }
            self = .number(number)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else {
            throw DecodingError.typeMismatch(
                RequestID.self,
                .init(codingPath: decoder.codingPath, debugDescription: "a string or a whole number within 64 bits"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        }
    }

    public var description: String {
        switch self {
        case .string(let value): value
        case .number(let value): String(value)
        }
    }

    /// The id as a JSON literal, for frames built by hand.
    public var jsonLiteral: String {
        switch self {
        case .number(let value): return String(value)
        case .string(let value): return JSONText.quoted(value)
        }
    }
}
