/// Reading an argument of a step as written: literal text with at most one `{{NAME}}` placeholder.
extension ArgvTemplate {
    /// Why an argument is not a template.
    public struct ParseError: Error, Sendable, Equatable {
        public var message: String
    }

    /// `word` as a template. `{{` and `}}` only ever delimit a placeholder: there is no escaping, so any other
    /// `{{` or `}}` is an error, as is a second placeholder or a name not spelt as a parameter's.
    public static func parse(_ word: String) -> Result<ArgvTemplate, ParseError> {
        guard let open = word.range(of: "{{") else {
            if word.contains("}}") { return .failure(ParseError(message: "'}}' without '{{' (there is no escaping)")) }
            return .success(ArgvTemplate(literal: word))
        }
        let prefix = word[..<open.lowerBound]
        if prefix.contains("}}") { return .failure(ParseError(message: "'}}' without '{{' (there is no escaping)")) }
        guard let close = word.range(of: "}}", range: open.upperBound..<word.endIndex) else {
            return .failure(ParseError(message: "'{{' without '}}' (there is no escaping)"))
        }
        let name = String(word[open.upperBound..<close.lowerBound])
        let suffix = word[close.upperBound...]
        if suffix.contains("{{") {
            return .failure(ParseError(message: "at most one {{parameter}} per argument"))
        }
        if suffix.contains("}}") { return .failure(ParseError(message: "'}}' without '{{' (there is no escaping)")) }
        guard PlaybookConfig.isValidParameterName(name) else {
            return .failure(
                ParseError(message: "a placeholder is {{NAME}}, NAME a parameter's name (a-z, 0-9, '_'), no spaces"))
        }
        return .success(ArgvTemplate(prefix: String(prefix), parameter: name, suffix: String(suffix)))
    }
}
