/// One request the official `openai` Python client made and the response it accepted, as the
/// fixture scripts record them (scripts/fixtures/record_openai_client.py and
/// record_openai_finetuning.py); replayed by OpenAIClientReplayTests and OpenAIFineTuningReplayTests.
struct RecordedExchange: Decodable {
    struct Request: Decodable { let method: String; let path: String; let headers: [String: String]; let body: String? }
    struct Response: Decodable { let status: Int; let headers: [String: String]; let body: String }
    let name: String
    let request: Request
    let response: Response
}
