import Foundation
import Kernels
import XCTest

/// Two budgets in one process (the serving scheduler and a job slot): each thread's work is split
/// by its own context, not by a process-wide setting.
final class ComputeContextTests: XCTestCase {
    /// The ranges `forEachChunk` hands out on this thread, and the context each chunk ran under.
    private func chunks(_ count: Int) -> [(Range<Int>, Int)] {
        let lock = NSLock()
        var seen: [(Range<Int>, Int)] = []
        Parallel.forEachChunk(count) { r in
            let inner = ComputeContext.current.threads
            lock.lock(); seen.append((r, inner)); lock.unlock()
        }
        return seen.sorted { $0.0.lowerBound < $1.0.lowerBound }
    }

    func testForEachChunkSplitsByTheCallingThreadsContextAndChunksInheritIt() {
        let three = ComputeContext.run(ComputeContext(threads: 3)) { chunks(300) }
        XCTAssertEqual(three.map(\.0), [0..<100, 100..<200, 200..<300])
        XCTAssertEqual(three.map(\.1), [3, 3, 3], "chunks run under the caller's context")
        let one = ComputeContext.run(ComputeContext(threads: 1)) { chunks(300) }
        XCTAssertEqual(one.map(\.0), [0..<300])
        // Nested runs restore the outer context.
        ComputeContext.run(ComputeContext(threads: 5)) {
            ComputeContext.run(ComputeContext(threads: 2)) { XCTAssertEqual(Parallel.threads, 2) }
            XCTAssertEqual(Parallel.threads, 5)
        }
    }

    func testTwoThreadsAtOnceEachKeepTheirOwnBudget() {
        // Both threads hold their context while the other one runs: each waits for the other to
        // have entered its context before splitting.
        let bothInside = DispatchGroup()
        bothInside.enter(); bothInside.enter()
        let lock = NSLock()
        var results: [Int: [Int]] = [:]
        let done = DispatchGroup()
        for budget in [1, 4] {
            done.enter()
            Thread {
                ComputeContext.run(ComputeContext(threads: budget)) {
                    bothInside.leave()
                    bothInside.wait()
                    let counts = self.chunks(400).map { $0.0.count }
                    lock.lock(); results[budget] = counts; lock.unlock()
                }
                done.leave()
            }.start()
        }
        done.wait()
        XCTAssertEqual(results[1], [400])
        XCTAssertEqual(results[4], [100, 100, 100, 100])
    }

    func testWorkOutsideAnyRunUsesTheProcessDefaultAndBLASGetsTheSmallestBudget() {
        let saved = ComputeContext.processDefault
        defer { ComputeContext.processDefault = saved }
        ComputeContext.processDefault = ComputeContext(threads: 2)
        XCTAssertEqual(chunks(10).map(\.0), [0..<5, 5..<10])
        XCTAssertEqual(ComputeContext.blasThreads(for: [ComputeContext(threads: 3), ComputeContext(threads: 1)]), 1)
        XCTAssertEqual(ComputeContext(threads: 0).threads, 1, "a budget is at least one thread")
    }
}
