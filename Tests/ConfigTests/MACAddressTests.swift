import XCTest

@testable import Config

final class MACAddressTests: XCTestCase {
    func testParsing() throws {
        let mac = try XCTUnwrap(MACAddress("02:00:00:00:00:01"))
        XCTAssertEqual(mac.octets, [2, 0, 0, 0, 0, 1])
        XCTAssertEqual(MACAddress("0A-bC-de-F0-12-34")?.octets, [0x0A, 0xBC, 0xDE, 0xF0, 0x12, 0x34])
        XCTAssertEqual(MACAddress("0a:bc:de:f0:12:34"), MACAddress("0A-BC-DE-F0-12-34"))
    }

    func testRejectsMalformedText() {
        for text in [
            "", "02:00:00:00:00", "02:00:00:00:00:01:02", "2:00:00:00:00:01", "02:00:00:00:00:1",
            "02:00:00-00:00:01", "02.00.00.00.00.01", "020000000001", "02:00:00:00:00:0g",
            " 02:00:00:00:00:01", "02:00:00:00:00:01 ", "02::00:00:00:00:01",
        ] {
            XCTAssertNil(MACAddress(text), "'\(text)'")
        }
    }

    func testKinds() throws {
        XCTAssertTrue(try XCTUnwrap(MACAddress("02:00:00:00:00:01")).isUnicast)
        XCTAssertTrue(try XCTUnwrap(MACAddress("02:00:00:00:00:01")).isLocallyAdministered)
        XCTAssertFalse(try XCTUnwrap(MACAddress("00:1b:21:00:00:01")).isLocallyAdministered)
        let multicast = try XCTUnwrap(MACAddress("01:00:5e:00:00:fb"))
        XCTAssertFalse(multicast.isUnicast)
        XCTAssertTrue(multicast.isMulticast)
        XCTAssertFalse(multicast.isBroadcast)
        let broadcast = try XCTUnwrap(MACAddress("ff:ff:ff:ff:ff:ff"))
        XCTAssertFalse(broadcast.isUnicast)
        XCTAssertTrue(broadcast.isBroadcast)
        XCTAssertTrue(try XCTUnwrap(MACAddress("00:00:00:00:00:00")).isZero)
    }

    func testDescriptionRoundTripsAndHashes() throws {
        let mac = MACAddress(bytes: (0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x0F))
        XCTAssertEqual(mac.description, "de:ad:be:ef:00:0f")
        XCTAssertEqual(MACAddress(mac.description), mac)
        let set: Set<MACAddress> = [mac, try XCTUnwrap(MACAddress("DE:AD:BE:EF:00:0F")), try XCTUnwrap(MACAddress("de:ad:be:ef:00:10"))]
        XCTAssertEqual(set.count, 2)
    }
}
