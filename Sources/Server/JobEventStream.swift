import Foundation
import HTTPTypes
import Hummingbird
import Registry
import Service

/// `GET /v1/fine_tuning/jobs/{id}/events?stream=true`: the job's events oldest first (those after
/// `after`), then each new one as it is logged (LISTEN on the job event channel), as server-sent
/// events `data: {event}`; `data: [DONE]` once the job is over and every event was sent.
struct JobEventStream {
    let jobs: JobService
    let job: Int
    let after: Int
    /// Events as the registry's records (`RecordView`) instead of OpenAI's shape.
    var records = false

    func response(_ context: ServerContext) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let listener = try await offload { [jobs] in
                let c = try Connection(jobs.registry.pool.conninfo)
                try c.listen(JobStore.eventChannel)
                return c
            }
            var last = after
            while true {
                // Read the state before the events: events logged before a final state are then all seen.
                let (final, events) = try await offload { [jobs, job, last] in
                    (try jobs.job(job).status.isFinal, try jobs.events(job, after: last))
                }
                for e in events {
                    try await writer.write(records ? try EventStreamWriter.line(record: e) : EventStreamWriter.line(FineTuningShapes.event(e)))
                    last = e.id
                }
                if final { break }
                // Wakes on any job's event (the payload is its id), or after a second to re-check.
                _ = try await offload { try listener.waitForNotification(timeout: 1) }
            }
            try await writer.write(EventStreamWriter.done)
            try await writer.finish(nil)
        })
    }
}
