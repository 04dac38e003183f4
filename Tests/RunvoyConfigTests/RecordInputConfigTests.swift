import Testing

@testable import RunvoyConfig

/// `executors.NAME.record_input` (issue 16, item 2): off unless the executor says so; a boolean.
struct RecordInputConfigTests {
    static func config(_ line: String) -> String {
        """
        executors:
          web:
            run_as: {user: nobody, group: nogroup}
            commands: any
        \(line)
        """
    }

    @Test func inputIsNotRecordedUnlessTheExecutorSaysSo() throws {
        let off = try ConfigLoader.parse(yaml: Self.config(""), file: "t.yaml")
        #expect(off.executor(named: "web")?.recordInput == false)
        let on = try ConfigLoader.parse(yaml: Self.config("    record_input: true"), file: "t.yaml")
        #expect(on.executor(named: "web")?.recordInput == true)
        #expect(throws: (any Error).self) {
            try ConfigLoader.parse(yaml: Self.config("    record_input: sometimes"), file: "t.yaml")
        }
    }
}
