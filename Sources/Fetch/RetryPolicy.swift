import Foundation

/// When to retry and how long to wait: exponential backoff with jitter, or the server's Retry-After.
public enum RetryPolicy {
    /// HTTP statuses that mean "try again later": 408 Request Timeout, 429 Too Many Requests, 5xx.
    public static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 429 || (500...599).contains(status)
    }

    /// Delay before retry number `retry` (1-based): uniformly random in [d/2, d] with
    /// d = min(initial * 2^(retry-1), max) ("equal jitter", so retries of many clients spread out
    /// yet never collapse to zero).
    public static func backoff(retry: Int, initial: TimeInterval, max maxDelay: TimeInterval) -> TimeInterval {
        let exponent = Double(Swift.max(0, Swift.min(retry - 1, 30)))
        let d = Swift.min(initial * pow(2, exponent), maxDelay)
        return d / 2 + Double.random(in: 0...1) * d / 2
    }

    /// Parses a Retry-After value: delay-seconds or an HTTP-date (RFC 9110 10.2.3), relative to `now`.
    /// A date in the past gives 0; garbage gives nil.
    public static func parseRetryAfter(_ value: String, now: Date = Date()) -> TimeInterval? {
        let v = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(v) { return seconds >= 0 ? TimeInterval(seconds) : nil }
        for format in httpDateFormats {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "GMT")
            f.dateFormat = format
            if let date = f.date(from: v) { return Swift.max(0, date.timeIntervalSince(now)) }
        }
        return nil
    }

    /// IMF-fixdate, then the obsolete RFC 850 and asctime forms that recipients must still accept.
    private static let httpDateFormats = [
        "EEE, dd MMM yyyy HH:mm:ss zzz",
        "EEEE, dd-MMM-yy HH:mm:ss zzz",
        "EEE MMM d HH:mm:ss yyyy",
    ]
}
