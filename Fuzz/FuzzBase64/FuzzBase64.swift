import Foundation
import FuzzSupport
import RunvoyKit

/// Base64 decoding, which the daemon runs on `stdin` data and `secrets_set` values and the client on every
/// `output` event, against Foundation: any bytes, decoded into a buffer of exactly `maxDecodedLength` (so
/// AddressSanitizer sees any write past it); what we decode Foundation decodes to the same bytes, and every
/// canonical encoding (one Foundation writes) we decode too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let source = UnsafeRawBufferPointer(start: data, count: size)
    let capacity = Base64.maxDecodedLength(size)
    let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 1)
    defer { destination.deallocate() }
    let ours = Base64.decode(source, into: destination).map { Array(destination.prefix($0)) }
    let text = Data(source)
    let reference = Data(base64Encoded: text).map { Array($0) }
    if let ours, ours != reference {
        fatalError("decoded \(ours) where Foundation decodes \(String(describing: reference)): \(Array(text))")
    }
    if let reference, Data(reference).base64EncodedData() == text, ours != reference {
        fatalError("refused the canonical encoding of \(reference)")
    }
    // The String entry point, as the handlers call it, agrees with the buffer one on valid UTF-8.
    if let string = String(validating: source, as: UTF8.self), Base64.decode(string) != ours {
        fatalError("Base64.decode(String) disagrees with the buffer decoder on \(Array(text))")
    }
    return 0
}

@main enum FuzzBase64Main {
    static func main() { FuzzDriver.run { data, size in fuzz(data!, size) } }
}
