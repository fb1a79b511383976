import Foundation
import Registry

/// A job's loss curves as an SVG document: training loss per step and evaluation loss per
/// evaluation against the optimizer step, with axes, tick labels, axis titles and a legend.
/// Written by hand (a few lines of SVG), so the CLI and the server draw the same picture.
public struct LossPlot: Sendable, Equatable {
    public struct Point: Sendable, Equatable {
        public let step: Int
        public let loss: Double
        public init(step: Int, loss: Double) { self.step = step; self.loss = loss }
    }

    public var title: String
    public var train: [Point]
    public var eval: [Point]
    public var width = 720
    public var height = 420

    public init(title: String, train: [Point], eval: [Point]) {
        self.title = title; self.train = train; self.eval = eval
    }

    /// The curves of a job from its events: `loss` of step events, `eval_loss` of evaluations. A step
    /// logged twice (a rescued job resumes from its checkpoint and repeats steps) keeps its last value.
    public static func series(_ events: [JobEvent]) -> (train: [Point], eval: [Point]) {
        series(metrics: events.filter { $0.type == .metrics }.map(\.data))
    }

    /// The same from the `data` of metrics events, oldest first.
    public static func series(metrics: [JSONValue]) -> (train: [Point], eval: [Point]) {
        var train: [Int: Double] = [:], eval: [Int: Double] = [:]
        for data in metrics {
            guard let step = data["step"]?.intValue else { continue }
            if let l = data["loss"]?.doubleValue, l.isFinite { train[step] = l }
            if let l = data["eval_loss"]?.doubleValue, l.isFinite { eval[step] = l }
        }
        func points(_ d: [Int: Double]) -> [Point] { d.keys.sorted().map { Point(step: $0, loss: d[$0]!) } }
        return (points(train), points(eval))
    }

    // Plot area margins: room for tick labels and axis titles on the left and bottom, the legend on top.
    static let left = 70.0, right = 20.0, top = 50.0, bottom = 55.0
    public static let trainColor = "#1f77b4", evalColor = "#d62728"

    public func svg() -> String {
        let w = Double(width), h = Double(height)
        let pw = w - Self.left - Self.right, ph = h - Self.top - Self.bottom
        let all = train + eval
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="sans-serif" font-size="12">
            <rect width="\(width)" height="\(height)" fill="white"/>
            <text x="\(fmt(w / 2))" y="20" text-anchor="middle" font-size="15">\(Self.escape(title))</text>

            """
        let maxStep = max(1, all.map(\.step).max() ?? 1)
        let losses = all.map(\.loss)
        var lo = losses.min() ?? 0, hi = losses.max() ?? 1
        if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
        let yTicks = Self.ticks(lo, hi)
        lo = min(lo, yTicks.first!); hi = max(hi, yTicks.last!)
        let xTicks = Self.ticks(0, Double(maxStep)).filter { $0 >= 0 && $0 <= Double(maxStep) }
        func x(_ step: Double) -> Double { Self.left + step / Double(maxStep) * pw }
        func y(_ loss: Double) -> Double { Self.top + (hi - loss) / (hi - lo) * ph }
        // Axes.
        out += "<g id=\"axes\" stroke=\"black\">"
        out += "<line x1=\"\(fmt(Self.left))\" y1=\"\(fmt(Self.top + ph))\" x2=\"\(fmt(Self.left + pw))\" y2=\"\(fmt(Self.top + ph))\"/>"
        out += "<line x1=\"\(fmt(Self.left))\" y1=\"\(fmt(Self.top))\" x2=\"\(fmt(Self.left))\" y2=\"\(fmt(Self.top + ph))\"/></g>\n"
        out += "<g id=\"x-ticks\">"
        for t in xTicks {
            out += "<line x1=\"\(fmt(x(t)))\" y1=\"\(fmt(Self.top + ph))\" x2=\"\(fmt(x(t)))\" y2=\"\(fmt(Self.top + ph + 5))\" stroke=\"black\"/>"
            out += "<text x=\"\(fmt(x(t)))\" y=\"\(fmt(Self.top + ph + 18))\" text-anchor=\"middle\">\(Self.label(t))</text>"
        }
        out += "</g>\n<g id=\"y-ticks\">"
        for t in yTicks {
            out += "<line x1=\"\(fmt(Self.left - 5))\" y1=\"\(fmt(y(t)))\" x2=\"\(fmt(Self.left + pw))\" y2=\"\(fmt(y(t)))\" stroke=\"#dddddd\"/>"
            out += "<text x=\"\(fmt(Self.left - 8))\" y=\"\(fmt(y(t) + 4))\" text-anchor=\"end\">\(Self.label(t))</text>"
        }
        out += "</g>\n"
        out += "<text id=\"x-label\" x=\"\(fmt(Self.left + pw / 2))\" y=\"\(fmt(h - 12))\" text-anchor=\"middle\">step</text>\n"
        out += "<text id=\"y-label\" x=\"18\" y=\"\(fmt(Self.top + ph / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(fmt(Self.top + ph / 2)))\">loss (nats)</text>\n"
        func curve(_ id: String, _ points: [Point], _ color: String, dashed: Bool) {
            guard !points.isEmpty else { return }
            let pts = points.map { "\(fmt(x(Double($0.step)))),\(fmt(y($0.loss)))" }.joined(separator: " ")
            out += "<polyline id=\"\(id)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(pts)\"/>\n"
            out += "<g id=\"\(id)-points\" fill=\"\(color)\">"
            for p in points { out += "<circle cx=\"\(fmt(x(Double(p.step))))\" cy=\"\(fmt(y(p.loss)))\" r=\"\(points.count > 60 ? 1.5 : 3)\"/>" }
            out += "</g>\n"
        }
        curve("train-loss", train, Self.trainColor, dashed: false)
        curve("eval-loss", eval, Self.evalColor, dashed: true)
        if all.isEmpty {
            out += "<text x=\"\(fmt(Self.left + pw / 2))\" y=\"\(fmt(Self.top + ph / 2))\" text-anchor=\"middle\" fill=\"#888888\">no steps logged yet</text>\n"
        }
        // Legend, top right.
        out += "<g id=\"legend\">"
        let lx = Self.left + pw - 195
        out += "<line x1=\"\(fmt(lx))\" y1=\"36\" x2=\"\(fmt(lx + 24))\" y2=\"36\" stroke=\"\(Self.trainColor)\" stroke-width=\"2\"/>"
        out += "<text x=\"\(fmt(lx + 30))\" y=\"40\">train loss</text>"
        out += "<line x1=\"\(fmt(lx + 95))\" y1=\"36\" x2=\"\(fmt(lx + 119))\" y2=\"36\" stroke=\"\(Self.evalColor)\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>"
        out += "<text x=\"\(fmt(lx + 125))\" y=\"40\">eval loss</text></g>\n"
        out += "</svg>\n"
        return out
    }

    /// About 5 "nice" ticks (1, 2 or 5 times a power of ten) covering lo...hi.
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let span = max(hi - lo, 1e-9)
        let raw = span / 5
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        let first = floor(lo / step) * step, last = ceil(hi / step) * step
        var out: [Double] = []
        var t = first
        while t <= last + step / 2 { out.append((t / step).rounded() * step); t += step }
        return out
    }

    static func label(_ v: Double) -> String {
        if v.rounded() == v && abs(v) < 1e9 { return String(Int(v)) }
        return String(format: "%g", (v * 1e6).rounded() / 1e6)
    }

    func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

extension JobService {
    /// The job's loss plot (train loss per step, eval loss per evaluation).
    public func lossPlot(_ id: Int) throws -> LossPlot {
        let j = try job(id)
        return LossPlot(job: j, events: try events(id))
    }
}

extension LossPlot {
    /// A job's plot from its record and events (the server's `loss.svg`, `lora jobs plot` over either transport).
    public init(job j: JobRecord, events: [JobEvent]) {
        let (train, eval) = LossPlot.series(events)
        let state = j.version.map { "\(j.task)@\($0)" } ?? j.status.rawValue
        self.init(title: "job \(j.id): \(j.task) on \(j.base) (\(state))", train: train, eval: eval)
    }
}
