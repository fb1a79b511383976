import Foundation

/// A single status line on stderr, redrawn in place when stderr is a terminal.
final class ProgressLine {
    let isTTY = isatty(STDERR_FILENO) != 0
    private var drawn = false

    func update(_ text: String) {
        guard isTTY else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K\(text)".utf8))
        drawn = true
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }

    func finishLine() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)); drawn = false }
    }
}

enum ResourceUsage {
    /// Peak resident set size of this process: VmHWM from /proc/self/status. (getrusage's
    /// ru_maxrss is not used: Linux carries it across exec, so a process spawned by a large parent
    /// reports the parent's size.)
    static func peakRSSBytes() -> Int {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
                let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
                return kb * 1024
            }
        }
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Int(u.ru_maxrss) * 1024
    }
}
