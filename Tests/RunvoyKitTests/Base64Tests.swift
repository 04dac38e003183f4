import Foundation
import PropertyBased
import RunvoyKit
import Testing

struct Base64Tests {
    @Test func agreesWithFoundationForAnyBytes() async {
        await propertyCheck(count: 300, input: Gen<UInt8>.value().array(of: 0...300)) { bytes in
            let ours = Base64.encode(bytes)
            #expect(ours == Data(bytes).base64EncodedString())
            #expect(Base64.decode(ours) == bytes)
        }
    }

    @Test(arguments: ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"])
    func decodesRFC4648Vectors(text: String) {
        #expect(Base64.decode(text).map { Data($0) } == Data(base64Encoded: text))
    }

    @Test(arguments: ["Zg=", "Z===", "Zm9v!A==", "====", "Zg=a", "Zm9vYmFy\n"])
    func rejectsInvalidText(text: String) {
        #expect(Base64.decode(text) == nil)
    }
}
