import Foundation
import XCTest

/// A test case with a fresh temporary directory per test (`dir`), removed afterwards.
open class TemporaryDirectoryTestCase: XCTestCase {
    public var dir: URL!

    override open func setUpWithError() throws {
        try super.setUpWithError()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(type(of: self))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override open func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
        try super.tearDownWithError()
    }
}
