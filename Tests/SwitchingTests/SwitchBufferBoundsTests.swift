import Memory
import Ports
import Switching
import XCTest

/// Frames against the size of a mempool buffer.
final class SwitchBufferBoundsTests: XCTestCase {
    /// A port whose frame limit is above what a mempool buffer holds (mtu 9000) must
    /// refuse a frame that does not fit, not write past the buffer.
    func testFrameLargerThanABufferIsRefused() throws {
        let f = try SwitchFixture([.access(10, mtu: 9000), .access(10, mtu: 9000)])
        let normal = ethFrame(to: broadcastMAC, from: mac(1), length: 1500, seed: 1)
        let jumbo = ethFrame(to: broadcastMAC, from: mac(1), length: 3000, seed: 2)
        let after = ethFrame(to: broadcastMAC, from: mac(1), length: 1500, seed: 3)
        XCTAssertEqual(f.send(0, normal, jumbo, after), 3)
        let got = f.received(1)
        XCTAssertEqual(got.map(\.count), [1500, 1500], "the jumbo frame is refused at the port")
        if got.count == 2 {
            assertBytes(got[0], normal, "frame before the jumbo one")
            assertBytes(got[1], after, "frame after the jumbo one")
        }
        XCTAssertEqual(f.drops(), ["p0.drop.bad_length": 1])
        f.assertNoLeak()
    }
}
