import CCurl
import Crypto
import Foundation

/// Fetches one URL into the content-addressed cache: cache check (at most one HEAD), then a GET that
/// resumes with Range / If-Range, retries with backoff, hashes while streaming and verifies.
struct FileDownloader {
    let cache: ContentCache
    let token: String?
    let options: FetchOptions

    typealias Progress = (_ completed: Int64, _ total: Int64?) -> Void

    func fetch(url: String, name: String, pinnedSHA256: String?, progress: Progress) throws -> FetchedFile {
        try cache.withLock(url: url) {
            if let hit = try cachedFile(url: url, name: name, pinnedSHA256: pinnedSHA256) {
                progress(hit.size, hit.size)
                return hit
            }
            do {
                return try download(url: url, name: name, pinnedSHA256: pinnedSHA256, progress: progress)
            } catch {
                // Keep resumable bytes; drop an empty partial (a 404, a refused connection).
                if (fileSize(cache.partialPath(url: url).path) ?? 0) == 0 { cache.discardPartial(url: url) }
                throw error
            }
        }
    }

    var authorizationHeaders: [String] {
        // libcurl drops custom Authorization headers when a redirect leaves the host (since 7.58),
        // so the token never reaches a CDN the hub redirects to.
        token.map { ["Authorization: Bearer \($0)"] } ?? []
    }

    static func isFileURL(_ url: String) -> Bool { url.lowercased().hasPrefix("file:") }

    // MARK: cache check

    private func cachedFile(url: String, name: String, pinnedSHA256: String?) throws -> FetchedFile? {
        func hit(_ sha: String, _ size: Int64, _ verifiedBy: String?) -> FetchedFile {
            FetchedFile(name: name, url: url, sha256: sha, size: size, blob: cache.blobPath(sha256: sha),
                        verifiedBy: verifiedBy, fromCache: true)
        }
        // A pinned hash whose blob exists needs no request at all.
        if let pinned = pinnedSHA256, let size = fileSize(cache.blobPath(sha256: pinned).path) {
            return hit(pinned, size, "model spec")
        }
        guard let ref = cache.readRef(url: url), pinnedSHA256 == nil || pinnedSHA256 == ref.sha256,
              let size = fileSize(cache.blobPath(sha256: ref.sha256).path), size == ref.size else { return nil }
        if Self.isFileURL(url) {
            guard let path = URL(string: url)?.path, let validator = fileValidator(path) else { return nil }
            return validator == ref.lastModified && fileSize(path) == ref.size ? hit(ref.sha256, size, nil) : nil
        }
        // One HEAD: is the source still what we cached?
        let result = CurlTransfer(url: url).perform(method: .head, headers: authorizationHeaders, range: nil,
                                                    options: options)
        guard result.code == 0, let head = result.final else {
            return hit(ref.sha256, size, nil)  // offline or flaky: the verified copy stands
        }
        if RetryPolicy.isRetryable(status: head.status) || head.status == 405 || head.status == 501 {
            return hit(ref.sha256, size, nil)  // the server cannot answer a HEAD now; keep the copy
        }
        guard (200..<300).contains(head.status) else { return nil }  // the GET will report the error
        if let linked = result.heads.compactMap({ LinkedHeaders.sha256(fromLinkedETag: $0["X-Linked-Etag"]) }).last {
            return linked == ref.sha256 ? hit(ref.sha256, size, "X-Linked-Etag") : nil
        }
        if let etag = head["ETag"], let old = ref.etag { return etag == old ? hit(ref.sha256, size, nil) : nil }
        if let lm = head.lastModified, let old = ref.lastModified { return lm == old ? hit(ref.sha256, size, nil) : nil }
        if let length = head.contentLength, length != ref.size { return nil }
        return hit(ref.sha256, size, nil)
    }

    // MARK: download

    private func download(url: String, name: String, pinnedSHA256: String?, progress: Progress) throws -> FetchedFile {
        try cache.ensureDirectories()
        let isFile = Self.isFileURL(url)
        let partialPath = cache.partialPath(url: url).path
        let fd = open(partialPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FetchError.io(path: partialPath, operation: "open", errno: errno) }
        var closed = false
        defer { if !closed { close(fd) } }

        // Resume state: the partial bytes, the validator they belong to, and their running hash.
        var state = PartialState(url: url)
        var offset: Int64 = 0
        var hasher = SHA256()
        if !isFile, let data = try? Data(contentsOf: cache.partialStatePath(url: url)),
           let saved = try? JSONDecoder().decode(PartialState.self, from: data), saved.url == url,
           saved.ifRange != nil, let size = fileSize(partialPath), size > 0
        {
            // Left by an earlier process: hash the prefix once so the final hash covers every byte.
            state = saved
            offset = try hashPrefix(fd: fd, path: partialPath, count: size, into: &hasher)
        } else {
            try truncate(fd: fd, path: partialPath)
        }

        var failures = 0
        var attempts = 0
        var linkedSHA256: String?
        var linkedSize: Int64?
        var finalHead = HTTPResponseHead(status: 0)
        while true {
            attempts += 1
            let startOffset = offset
            let resumeFrom: Int64? = (offset > 0 && state.ifRange != nil && !isFile) ? offset : nil
            var headers = authorizationHeaders
            if resumeFrom != nil, let v = state.ifRange { headers.append("If-Range: \(v)") }

            var began = false
            var restart = false
            var ioError: FetchError?
            var limitError: FetchError?
            var expectedTotal: Int64?
            let result = CurlTransfer(url: url).perform(method: .get, headers: headers, range: resumeFrom,
                                                        options: options) { head, bytes in
                if !began {
                    began = true
                    if head.status == 206 {
                        // Append only if the server continues exactly our bytes of the same version.
                        guard resumeFrom != nil, let range = head.contentRange, range.start == offset,
                              Self.sameVersion(head, state) else { restart = true; return false }
                        expectedTotal = range.total
                    } else {
                        // A full body (200, or If-Range said the validator changed): start from byte 0.
                        do {
                            try self.truncate(fd: fd, path: partialPath)
                            state = PartialState(url: url, etag: head.strongETag, lastModified: head.lastModified)
                            try self.cache.writeAtomically(try JSONEncoder().encode(state),
                                                           to: self.cache.partialStatePath(url: url))
                        } catch {
                            ioError = error as? FetchError ?? .io(path: partialPath, operation: "truncate", errno: EIO)
                            return false
                        }
                        offset = 0
                        hasher = SHA256()
                        expectedTotal = head.contentLength
                    }
                    // The declared size, before a byte is written: within --max-bytes and the free disk.
                    if let total = expectedTotal {
                        if total > self.options.maxBytes {
                            limitError = .tooLarge(url: url, declared: total, received: offset, limit: self.options.maxBytes)
                            return false
                        }
                        if let free = Self.freeBytes(partialPath), total - offset > free {
                            limitError = .insufficientDisk(url: url, needed: total - offset, available: free, path: partialPath)
                            return false
                        }
                    }
                }
                if offset + Int64(bytes.count) > self.options.maxBytes {
                    limitError = .tooLarge(url: url, declared: expectedTotal, received: offset + Int64(bytes.count),
                                           limit: self.options.maxBytes)
                    return false
                }
                if let e = writeAll(fd: fd, bytes) {
                    ioError = .io(path: partialPath, operation: "write", errno: e)
                    return false
                }
                hasher.update(bufferPointer: bytes)
                offset += Int64(bytes.count)
                progress(offset, expectedTotal)
                return true
            }
            for head in result.heads {
                if let sha = LinkedHeaders.sha256(fromLinkedETag: head["X-Linked-Etag"]) { linkedSHA256 = sha }
                if let size = head["X-Linked-Size"].flatMap({ Int64($0) }) { linkedSize = size }
            }
            if let error = ioError ?? limitError {
                cache.discardPartial(url: url)
                throw error
            }
            let status = result.final?.status ?? 0
            if result.code == 0 && status == 206 && !began { restart = true }  // a range answer without bytes
            var error: FetchError
            var retryable: Bool
            var retryAfter: TimeInterval?
            if restart || (result.code == 0 && status == 416 && startOffset > 0) {
                // The server's copy changed under our partial bytes (or cannot serve the range): start over.
                try truncate(fd: fd, path: partialPath)
                unlink(cache.partialStatePath(url: url).path)
                state = PartialState(url: url)
                offset = 0
                hasher = SHA256()
                failures += 1
                if failures >= options.maxAttempts {
                    throw FetchError.retriesExhausted(url: url, attempts: attempts, last: .http(
                        url: url, status: status, body: "the server kept changing the file during the download"))
                }
                continue
            } else if result.code == 0 && ((200..<300).contains(status) || isFile) {
                if !began {
                    // An empty 200 body: the file is empty, whatever an earlier attempt left.
                    try truncate(fd: fd, path: partialPath)
                    offset = 0
                    hasher = SHA256()
                }
                if let total = expectedTotal, total != offset {
                    error = .transport(url: url, code: 18, message: "received \(offset) of \(total) bytes")
                    retryable = true
                } else {
                    finalHead = result.final ?? HTTPResponseHead(status: 200)
                    break
                }
            } else if result.code == 0 {
                error = .http(url: url, status: status, body: String(result.errorBody.prefix(300)))
                retryable = RetryPolicy.isRetryable(status: status)
                retryAfter = result.final?["Retry-After"].flatMap { RetryPolicy.parseRetryAfter($0) }
            } else {
                error = .transport(url: url, code: result.code, message: result.message)
                retryable = CurlCodes.retryable.contains(result.code)
            }
            guard retryable else { throw error }
            if offset > startOffset { failures = 0 }  // progress was made: this is a flaky link, not a dead one
            failures += 1
            if failures >= options.maxAttempts {
                throw FetchError.retriesExhausted(url: url, attempts: attempts, last: error)
            }
            let delay = retryAfter.map { min($0, options.maxRetryAfter) }
                ?? RetryPolicy.backoff(retry: failures, initial: options.initialBackoff, max: options.maxBackoff)
            Thread.sleep(forTimeInterval: delay)
        }

        // Verify, then move into place under the hash.
        let actual = ContentCache.hex(hasher.finalize())
        if fsync(fd) != 0 { throw FetchError.io(path: partialPath, operation: "fsync", errno: errno) }
        close(fd)
        closed = true
        if let linkedSize, linkedSize != offset {
            cache.discardPartial(url: url)
            throw FetchError.sizeMismatch(url: url, expected: linkedSize, actual: offset)
        }
        var checks: [(String, String)] = []
        if let pinnedSHA256 { checks.append((pinnedSHA256, "model spec")) }
        if let linkedSHA256 { checks.append((linkedSHA256, "X-Linked-Etag")) }
        if checks.isEmpty && options.checkSidecar {
            let sidecar = Self.sidecarURL(url)
            if let sha = try sidecarSHA256(sidecar) { checks.append((sha, "sidecar \(sidecar)")) }
        }
        for (expected, source) in checks where expected != actual {
            cache.discardPartial(url: url)
            throw FetchError.checksumMismatch(url: url, expected: expected, actual: actual, source: source)
        }
        let blob = try cache.installBlob(from: URL(fileURLWithPath: partialPath), sha256: actual)
        unlink(cache.partialStatePath(url: url).path)
        let validator = isFile ? URL(string: url).flatMap { fileValidator($0.path) } : nil
        try cache.writeRef(FileRef(url: url, sha256: actual, size: offset,
                                   etag: finalHead["ETag"] ?? state.etag,
                                   lastModified: validator ?? finalHead.lastModified ?? state.lastModified,
                                   linkedSHA256: linkedSHA256))
        return FetchedFile(name: name, url: url, sha256: actual, size: offset, blob: blob,
                           verifiedBy: checks.first?.1, fromCache: false)
    }

    /// Bytes free for an unprivileged writer on the file system holding `path` (statvfs), nil if unknown.
    static func freeBytes(_ path: String) -> Int64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    /// False when a 206's validator shows a different version than the one our partial bytes came from
    /// (a server that ignored If-Range).
    static func sameVersion(_ head: HTTPResponseHead, _ state: PartialState) -> Bool {
        if let etag = head.strongETag, let old = state.etag { return etag == old }
        if let lm = head.lastModified, let old = state.lastModified, state.etag == nil { return lm == old }
        return true
    }

    // MARK: file helpers

    private func truncate(fd: Int32, path: String) throws {
        if ftruncate(fd, 0) != 0 { throw FetchError.io(path: path, operation: "truncate", errno: errno) }
        if lseek(fd, 0, SEEK_SET) < 0 { throw FetchError.io(path: path, operation: "seek", errno: errno) }
    }

    private func hashPrefix(fd: Int32, path: String, count: Int64, into hasher: inout SHA256) throws -> Int64 {
        if lseek(fd, 0, SEEK_SET) < 0 { throw FetchError.io(path: path, operation: "seek", errno: errno) }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while total < count {
            let n = read(fd, buffer.baseAddress, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw FetchError.io(path: path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += Int64(n)
        }
        return total  // the file offset now sits at the end, where appended bytes go
    }

    func fileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(st.st_size)
    }

    /// A local source's validator: size and modification time.
    private func fileValidator(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return "file:\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }
}

/// Writes every byte, retrying short writes; returns errno on failure.
private func writeAll(fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        done += n
    }
    return nil
}
