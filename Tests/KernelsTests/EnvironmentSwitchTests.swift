import Kernels
import XCTest

/// `EnvironmentSwitch`: on/1 and off/0 are known, unset or empty is the default, anything else is nil
/// (refused) and named by `error`.
final class EnvironmentSwitchTests: XCTestCase {
    func testValuesDefaultsAndRefusals() {
        let s = EnvironmentSwitch(variable: "X_SWITCH", default: true, purpose: "a test")
        XCTAssertEqual(s.value(in: [:]), true)
        XCTAssertEqual(s.value(in: ["X_SWITCH": ""]), true)
        XCTAssertEqual(s.value(in: ["X_SWITCH": "on"]), true)
        XCTAssertEqual(s.value(in: ["X_SWITCH": "1"]), true)
        XCTAssertEqual(s.value(in: ["X_SWITCH": "off"]), false)
        XCTAssertEqual(s.value(in: ["X_SWITCH": "0"]), false)
        XCTAssertNil(s.value(in: ["X_SWITCH": "yes"]))
        XCTAssertNil(s.error(in: ["X_SWITCH": "off"]))
        XCTAssertEqual(s.error(in: ["X_SWITCH": "yes"]), "X_SWITCH=yes is not one of on, 1, off, 0 (a test)")
        let off = EnvironmentSwitch(variable: "X_SWITCH", default: false, purpose: "a test")
        XCTAssertEqual(off.value(in: [:]), false)
        let named = EnvironmentSwitch(variable: "X_SWITCH", default: true, on: ["step"], off: ["token"], purpose: "a test")
        XCTAssertEqual(named.value(in: ["X_SWITCH": "step"]), true)
        XCTAssertEqual(named.value(in: ["X_SWITCH": "token"]), false)
        XCTAssertNil(named.value(in: ["X_SWITCH": "off"]))
        XCTAssertEqual(named.error(in: ["X_SWITCH": "on"]), "X_SWITCH=on is not one of step, token (a test)")
    }
}
