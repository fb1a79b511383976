import Foundation
import Kernels
import XCTest

/// `Parallel.forEachChunk` on the persistent pool: every index exactly once, for many regions in a
/// row (workers spinning, parked and waking), nested regions (the pool is busy: Dispatch runs them)
/// and regions from several threads at once.
final class ParallelPoolTests: XCTestCase {
    /// Counts how often each index of 0..<count was visited by `forEachChunk` under `threads`.
    func visits(_ count: Int, threads: Int, minChunk: Int = 1) -> [Int] {
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
        hits.initialize(repeating: 0, count: count)
        defer { hits.deallocate() }
        ComputeContext.run(ComputeContext(threads: threads)) {
            Parallel.forEachChunk(count, minChunk: minChunk) { r in
                for i in r { hits[i] += 1 }   // chunks are disjoint: no two threads touch one index
            }
        }
        return Array(UnsafeBufferPointer(start: hits, count: count))
    }

    func testEveryIndexRunsExactlyOnceOverManyRegions() {
        for round in 0..<2000 {
            let count = 1 + (round * 37) % 300
            let threads = 1 + round % 5
            XCTAssertEqual(visits(count, threads: threads, minChunk: 1 + round % 3), [Int](repeating: 1, count: count),
                           "round \(round): count \(count), threads \(threads)")
        }
    }

    func testNestedRegionsRunEveryIndex() {
        let lock = NSLock()
        var seen = Set<Int>()
        ComputeContext.run(ComputeContext(threads: 2)) {
            Parallel.forEachChunk(8) { outer in
                for o in outer {
                    Parallel.forEachChunk(10) { inner in
                        for i in inner { lock.lock(); seen.insert(o * 10 + i); lock.unlock() }
                    }
                }
            }
        }
        XCTAssertEqual(seen, Set(0..<80))
    }

    func testRegionsFromSeveralThreadsAtOnceEachCoverTheirIndices() {
        let done = DispatchGroup()
        let lock = NSLock()
        var failures: [String] = []
        for t in 0..<4 {
            done.enter()
            Thread {
                for round in 0..<300 {
                    let count = 50 + (round * 13 + t) % 200
                    let v = self.visits(count, threads: 2)
                    if v != [Int](repeating: 1, count: count) { lock.lock(); failures.append("thread \(t) round \(round)"); lock.unlock() }
                }
                done.leave()
            }.start()
        }
        done.wait()
        XCTAssertEqual(failures, [])
    }
}

extension ParallelPoolTests {
    /// The calling thread's name (Linux: /proc/thread-self/comm).
    static func threadName() -> String {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A region of two chunks where each waits until the other has started can only finish on two
    /// threads at once; one of them is the caller, the other a pool worker (named `lora-pool`), not a
    /// Dispatch thread: the region ran on the pool. (Needs 2 cores, which the project requires.)
    func testTwoChunksRunAtOnceOnTheCallerAndAPoolWorker() throws {
        try XCTSkipIf(ComputeContext.cores < 2, "one core: the pool has no worker")
        let saved = Parallel.usePool
        defer { Parallel.usePool = saved }
        Parallel.usePool = true
        for _ in 0..<50 {
            let started = UnsafeMutablePointer<Int>.allocate(capacity: 2)
            started.initialize(repeating: 0, count: 2)
            defer { started.deallocate() }
            let lock = NSLock()
            var names: [String] = []
            ComputeContext.run(ComputeContext(threads: 2)) {
                Parallel.forEachChunk(2) { r in
                    let me = r.lowerBound
                    lock.lock(); started[me] = 1; names.append(Self.threadName()); lock.unlock()
                    while true {   // wait for the other chunk to start (it can only run on another thread)
                        lock.lock(); let other = started[1 - me]; lock.unlock()
                        if other == 1 { break }
                        sched_yield()
                    }
                }
            }
            XCTAssertEqual(names.filter { $0 == "lora-pool" }.count, 1, "\(names)")
        }
    }
}
