/// One element of a TemplateProcessing template.
enum TemplateItem: Equatable {
    /// The ids of a named special token from the template's `special_tokens`.
    case special([Int])
    /// The encoded sequence ("A"; "B" only appears in pair templates, which this tokenizer does not encode).
    case sequence
}

/// The post-processors of HF `tokenizers` that the supported families use, as far as token ids go
/// (offsets and type ids are not computed here).
indirect enum PostProcessor {
    case template(single: [TemplateItem])
    /// Only adjusts offsets: the ids pass through.
    case byteLevel
    /// `cls` + ids + `sep` (BERT and RoBERTa single-sequence layout).
    case wrap(prefix: [Int], suffix: [Int])
    case sequence([PostProcessor])

    func apply(_ ids: [Int]) -> [Int] {
        switch self {
        case let .template(single):
            var out: [Int] = []
            out.reserveCapacity(ids.count + 2)
            for item in single {
                switch item {
                case let .special(s): out.append(contentsOf: s)
                case .sequence: out.append(contentsOf: ids)
                }
            }
            return out
        case .byteLevel:
            return ids
        case let .wrap(prefix, suffix):
            return prefix + ids + suffix
        case let .sequence(steps):
            var out = ids
            for step in steps { out = step.apply(out) }
            return out
        }
    }

    /// The ids the processor puts before and after the sequence (first and last special tokens).
    var addedIds: (prefix: [Int], suffix: [Int]) {
        switch self {
        case let .template(single):
            guard let seq = single.firstIndex(of: .sequence) else {
                return (single.flatMap { if case let .special(s) = $0 { return s } else { return [] } }, [])
            }
            let ids: (ArraySlice<TemplateItem>) -> [Int] = { items in
                items.flatMap { if case let .special(s) = $0 { return s } else { return [] } }
            }
            return (ids(single[..<seq]), ids(single[(seq + 1)...]))
        case .byteLevel:
            return ([], [])
        case let .wrap(prefix, suffix):
            return (prefix, suffix)
        case let .sequence(steps):
            var p: [Int] = [], s: [Int] = []
            for step in steps {
                let a = step.addedIds
                p = a.prefix + p
                s += a.suffix
            }
            return (p, s)
        }
    }
}
