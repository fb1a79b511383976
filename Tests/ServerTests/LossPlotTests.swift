import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Registry
import Service
import XCTest

/// The loss plot is well-formed SVG whose curves put each logged loss where the axes say it is.
final class LossPlotTests: XCTestCase {
    /// Elements of an SVG document: name, attributes, and the text of `<text>` elements.
    final class SVGElements: NSObject, XMLParserDelegate {
        var elements: [(name: String, attributes: [String: String])] = []
        var texts: [String] = []
        /// Each `<text>`'s attributes, in document order (parallel to `texts`).
        var textAttributes: [[String: String]] = []
        private var inText = false
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            elements.append((name, attributes))
            if name == "text" { inText = true; texts.append(""); textAttributes.append(attributes) }
        }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" { inText = false }
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { if inText { texts[texts.count - 1] += string } }

        static func parse(_ svg: String) throws -> SVGElements {
            let p = XMLParser(data: Data(svg.utf8))
            let d = SVGElements()
            p.delegate = d
            guard p.parse() else { throw p.parserError ?? NSError(domain: "svg", code: 1) }
            return d
        }

        func element(id: String) -> [String: String]? { elements.first { $0.attributes["id"] == id }?.attributes }

        /// The polyline's points as (x, y).
        func points(_ id: String) -> [(Double, Double)] {
            (element(id: id)?["points"] ?? "").split(separator: " ").map {
                let xy = $0.split(separator: ",").map { Double($0)! }
                return (xy[0], xy[1])
            }
        }
    }

    func testCurvesAxesLabelsAndLegendFollowTheData() throws {
        let train = [(1, 4.0), (2, 3.0), (3, 3.5), (4, 2.0)].map { LossPlot.Point(step: $0.0, loss: $0.1) }
        let eval = [(2, 3.2), (4, 2.5)].map { LossPlot.Point(step: $0.0, loss: $0.1) }
        let svg = LossPlot(title: "job 1: a<b & c", train: train, eval: eval).svg()
        let doc = try SVGElements.parse(svg)
        XCTAssertEqual(doc.elements.first?.name, "svg")
        let t = doc.points("train-loss"), e = doc.points("eval-loss")
        XCTAssertEqual(t.count, 4)
        XCTAssertEqual(e.count, 2)
        // x grows with the step; a higher loss is drawn higher up (smaller y).
        XCTAssertEqual(t.map(\.0), t.map(\.0).sorted())
        XCTAssertLessThan(t[0].1, t[1].1, "4.0 above 3.0")
        XCTAssertGreaterThan(t[2].1, t[0].1)
        XCTAssertLessThan(t[2].1, t[1].1, "3.5 between")
        XCTAssertEqual(e[0].0, t[1].0, accuracy: 1e-9, "eval at step 2 sits above train's step 2")
        XCTAssertEqual(e[1].0, t[3].0, accuracy: 1e-9)
        XCTAssertTrue(doc.texts.contains("step"))
        XCTAssertTrue(doc.texts.contains("loss (nats)"))
        XCTAssertTrue(doc.texts.contains("train loss"))
        XCTAssertTrue(doc.texts.contains("eval loss"))
        XCTAssertTrue(doc.texts.contains("job 1: a<b & c"), "the title is escaped and reads back")
        // Tick labels are where their values are: the y-axis label "3" lies on the y of loss 3.0 (train's step 2).
        let three = try XCTUnwrap(doc.texts.indices.first { doc.texts[$0] == "3" && doc.textAttributes[$0]["text-anchor"] == "end" })
        XCTAssertEqual(Double(doc.textAttributes[three]["y"] ?? "")! - 4, t[1].1, accuracy: 0.11)
    }

    func testSeriesKeepTheLastValueOfARepeatedStepAndSkipNonFiniteLosses() {
        let events: [JSONValue] = [
            .object(["step": .number(1), "loss": .number(5)]),
            .object(["step": .number(2), "loss": .number(4)]),
            .object(["step": .number(2), "eval_loss": .number(4.5)]),
            .object(["step": .number(2), "loss": .number(3.9)]),   // resumed: step 2 again
            .object(["step": .number(3), "loss": .number(.nan)]),
        ]
        let (train, eval) = LossPlot.series(metrics: events)
        XCTAssertEqual(train, [.init(step: 1, loss: 5), .init(step: 2, loss: 3.9)])
        XCTAssertEqual(eval, [.init(step: 2, loss: 4.5)])
        let empty = try? SVGElements.parse(LossPlot(title: "empty", train: [], eval: []).svg())
        XCTAssertTrue(empty?.texts.contains("no steps logged yet") == true)
    }
}
