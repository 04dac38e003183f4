import Foundation
import FuzzSupport
import RunvoyKit

/// The client's own JSON reader (`JSONValue.parse`, which reads every reply and event of `runvoyctl exec`)
/// against Foundation's: whatever the bytes, it never crashes, and what it accepts Foundation accepts too and
/// reads as the same value (it never invents a value from text that is not JSON).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let ours = JSONValue.parse(bytes) else { return 0 }
    // What the client reads from a reply: a few members, the id as a number or a string.
    _ = (ours["id"]?.int, ours["event"]?.string, ours["result"]?.isNull, ours["error"]?["code"]?.string)
    let text = String(reflecting: String(decoding: bytes, as: UTF8.self))
    guard let theirs = try? JSONSerialization.jsonObject(with: Data(bytes), options: .fragmentsAllowed) else {
        fatalError("JSONValue accepted text that Foundation refuses: \(text)")
    }
    guard same(ours, theirs) else { fatalError("JSONValue read \(ours), Foundation \(theirs), from \(text)") }
    return 0
}

/// Whether our value is the one Foundation read (as `HotPathJSONTests.same` compares them).
func same(_ ours: JSONValue, _ theirs: Any) -> Bool {
    switch ours {
    case .null: return theirs is NSNull
    case .bool(let value): return (theirs as? Bool) == value
    case .number(let value):
        // Foundation keeps an integer too large for 64 bits as a Decimal (38 digits), whose conversion to Double
        // can differ in the last digits from the correctly rounded value `Double(_:)` gives us.
        guard let number = (theirs as? NSNumber)?.doubleValue else { return false }
        return number == value || (number - value).magnitude <= value.magnitude * 1e-12
    case .string(let value): return (theirs as? String) == value
    case .array(let items):
        guard let other = theirs as? [Any], other.count == items.count else { return false }
        return zip(items, other).allSatisfy { same($0, $1) }
    case .object(let members):
        guard let other = theirs as? [String: Any], other.count == members.count else { return false }
        return members.allSatisfy { key, value in other[key].map { same(value, $0) } ?? false }
    }
}

@main enum FuzzJSONMain {
    static func main() { FuzzDriver.run { data, size in fuzz(data!, size) } }
}
