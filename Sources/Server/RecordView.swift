import Foundation
import HTTPTypes
import Hummingbird
import Registry
import Service

/// The job routes' second representation, for `lora`'s own CLI client: with
/// `Accept: application/vnd.lora.record+json` a job, a list of jobs or events, and streamed events
/// are the registry's records (the JSON `lora jobs show --json` prints against the database), so
/// one set of commands prints the same thing over either transport. Without the header the routes
/// answer in OpenAI's shapes.
enum RecordView {
    static let mediaType = "application/vnd.lora.record+json"

    static func requested(_ request: Request) -> Bool {
        request.headers[.accept]?.contains(mediaType) == true
    }

    /// `{"object": "list", "data": [records], "has_more": ...}`, the first `limit` of `items`.
    static func page<T: Encodable>(_ items: [T], limit: Int) throws -> Response {
        try encoded(Page(data: Array(items.prefix(limit)), hasMore: items.count > limit))
    }

    private struct Page<T: Encodable>: Encodable {
        let object = "list"
        let data: [T]
        let hasMore: Bool
        enum CodingKeys: String, CodingKey { case object, data, hasMore = "has_more" }
    }
}
