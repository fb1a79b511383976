// A byte-identical copy of openapi.yaml (scripts/embed-openapi.sh writes it; OpenAPIDocumentTests
// checks it). Edit openapi.yaml, never this one.
enum OpenAPIDocument {
    static let yaml = ####"""
openapi: 3.1.0
"""####
}
