// Measures the daemon-side cost of `list --limit 50` and `status` with a large history: the store query plus
// the JSON encoding of the reply, exactly what runvoyd does per request. Prints medians and percentiles.
//
//     swift run -c release StoreBench [executions] [iterations]
//     swift run -c release StoreBench fill STATE_DIRECTORY [executions]   # a history for scripts/bench
//     swift run -c release StoreBench redact                               # redaction throughput, ns per byte

import Glibc
import RunvoyKit
import RunvoyStore

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "redact" {
    // What the daemon spends per byte of output on an executor that injects secrets: 64 KiB reads of log-like
    // text, through StreamRedactor, for 1 and 5 secrets of 32 bytes.
    func nanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
    let line = Array("2026-12-01T17:00:00Z INFO applying change 42 to resource aws_instance.web[3]\n".utf8)
    var text: [UInt8] = []
    while text.count < 64 << 10 { text += line }
    text = Array(text.prefix(64 << 10))
    for secrets in [1, 5] {
        var values: [[UInt8]] = []
        for index in 0..<secrets {
            var value: [UInt8] = []
            for offset in 0..<32 { value.append(UInt8(65 + (offset * 7 + index * 13) % 26)) }
            values.append(value)
        }
        let set = RedactionSet(secrets: values.enumerated().map { (name: "s\($0.offset)", value: $0.element) })
        var best = Int64.max
        for _ in 0..<5 {
            let redactor = StreamRedactor(set)
            let start = nanoseconds()
            var total = 0
            for _ in 0..<256 { total += text.withUnsafeBytes { redactor.feed($0, now: 0) }.count }
            total += redactor.finish().count
            best = min(best, nanoseconds() - start)
            precondition(total == 256 * text.count)
        }
        let perByte = Double(best) / Double(256 * text.count)
        let hundredths = Int((perByte * 100).rounded())
        print(
            "redaction, \(secrets) secret(s) of 32 bytes: \(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100) ns/byte, \(Int(1000 / perByte)) MB/s"
        )
    }
    exit(0)
}
var fillOnly: String?
if arguments.first == "fill", arguments.count >= 2 {
    fillOnly = arguments[1]
    arguments.removeFirst(2)
}
let count = arguments.count > 0 ? Int(arguments[0]) ?? 10_000 : 10_000
let iterations = arguments.count > 1 ? Int(arguments[1]) ?? 2000 : 2000

var template = Array("/tmp/runvoy-store-bench.XXXXXX".utf8CString)
guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
let directory = fillOnly ?? String(cString: made)
defer { if fillOnly == nil { _ = system("rm -rf '\(directory)'") } }

let store = try ExecutionStore(stateDirectory: directory)
let users = ["alice", "bob", "carol", "dave", "erin"]
let statuses: [ExecutionStatus] = [.succeeded, .succeeded, .succeeded, .failed, .killed, .timedOut]
var spec = timespec()
clock_gettime(CLOCK_REALTIME, &spec)
let now = Int64(spec.tv_sec) * 1000
var ids: [String] = []
let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
var generator = SystemRandomNumberGenerator()
var infos: [ExecutionInfo] = []
for index in 0..<count {
    let id = String((0..<26).map { _ in alphabet[Int(generator.next() as UInt8) % 32] })
    ids.append(id)
    let user = users[index % users.count]
    infos.append(
        ExecutionInfo(
            executionId: id, status: statuses[index % statuses.count], callerUid: UInt32(1000 + index % users.count),
            callerUser: user, callerPid: Int32(10_000 + index), executor: index % 3 == 0 ? "deploy" : "default",
            runAs: "nobody:nogroup", argv: ["terraform", "plan", "-var", "build=\(index)"],
            workingDirectory: "/srv/infra", envKeys: ["TF_VAR_region"], pid: Int32(20_000 + index),
            exitCode: 0, signal: nil, createdAtMs: now - Int64(count - index) * 1000,
            startedAtMs: now - Int64(count - index) * 1000 + 1, finishedAtMs: now - Int64(count - index) * 1000 + 900,
            durationUsec: 899_000, stdoutBytes: 4096, stderrBytes: 120, storedBytes: 4216, droppedBytes: 0,
            outputPruned: false, configDigest: "0123456789abcdef", reason: nil))
}
let fillStart = ContinuousClock.now
try store.insertMany(infos)
let fillTime = ContinuousClock.now - fillStart
if fillOnly != nil {
    print("filled \(directory) with \(count) executions in \(fillTime); newest \(ids.last ?? "")")
    exit(0)
}

func measure(_ label: String, _ body: () throws -> Int) rethrows {
    var samples: [Duration] = []
    samples.reserveCapacity(iterations)
    var bytes = 0
    for _ in 0..<iterations {
        let start = ContinuousClock.now
        bytes = try body()
        samples.append(ContinuousClock.now - start)
    }
    samples.sort()
    func ms(_ d: Duration) -> String {
        let value = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        return String(Int(value * 1000)) + " µs"
    }
    print(
        "\(label): median \(ms(samples[samples.count / 2])), p90 \(ms(samples[samples.count * 9 / 10])), "
            + "p99 \(ms(samples[samples.count * 99 / 100])), reply \(bytes) bytes")
}

print("history: \(count) executions (filled in \(fillTime)), \(iterations) iterations each")
try measure("list --limit 50 (root, all users)") {
    let found = try store.list(ListParams(limit: 50), ownerUid: nil)
    return try Frame.encode(Reply(id: .number(1), result: ListResult(executions: found))).count
}
try measure("list --limit 50 (one user's own)") {
    let found = try store.list(ListParams(limit: 50), ownerUid: 1002)
    return try Frame.encode(Reply(id: .number(1), result: ListResult(executions: found))).count
}
try measure("list --limit 50 --status failed --executor deploy") {
    let found = try store.list(ListParams(limit: 50, status: [.failed], executor: "deploy"), ownerUid: nil)
    return try Frame.encode(Reply(id: .number(1), result: ListResult(executions: found))).count
}
var next = 0
try measure("status ID") {
    next = (next + 7919) % ids.count
    let info = try store.get(ids[next])!
    return try Frame.encode(Reply(id: .number(1), result: info)).count
}

// The history's share of every `exec`: one insert and one finish (a command without output creates no file).
var execIndex = 0
@MainActor func bookkeeping(output: [UInt8]?) throws -> Int {
    execIndex += 1
    var info = infos[execIndex % infos.count]
    info.executionId = "zz" + String(repeating: "0", count: 24 - String(execIndex).count) + String(execIndex)
    info.status = .running
    try store.insert(info)
    let recorder = store.makeRecorder(info.executionId, cap: 64 << 20)
    output?.withUnsafeBytes { recorder.append(.stdout, $0) }
    recorder.finish()
    try store.finish(
        info.executionId,
        .init(
            status: .succeeded, pid: 1, exitCode: 0, signal: nil, startedAtMs: 1, finishedAtMs: 2, durationUsec: 1,
            totals: recorder.totals, reason: nil))
    return 0
}
store.spares.refill()
usleep(100_000)
try measure("exec bookkeeping, no output (insert + finish)") { try bookkeeping(output: nil) }
try measure("exec bookkeeping, one line of output (+ output folder)") {
    try bookkeeping(output: Array("hello\n".utf8))
}
