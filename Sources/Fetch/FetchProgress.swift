import Foundation

/// Progress of one `fetchModel` call, summed over its files. Delivered from download threads,
/// one call at a time, at most about ten times a second plus once per finished file.
public struct FetchProgress: Sendable {
    /// The file whose bytes arrived last.
    public var file: String
    /// Bytes on disk for this model so far, including resumed prefixes and cache hits.
    public var completedBytes: Int64
    /// Sum of the sizes known so far; nil while some file's size is unknown.
    public var totalBytes: Int64?
    public var filesCompleted: Int
    public var filesTotal: Int

    public init(file: String, completedBytes: Int64, totalBytes: Int64?, filesCompleted: Int, filesTotal: Int) {
        self.file = file
        self.completedBytes = completedBytes
        self.totalBytes = totalBytes
        self.filesCompleted = filesCompleted
        self.filesTotal = filesTotal
    }
}
