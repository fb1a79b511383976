#!/usr/bin/env bash
# Copies openapi.yaml into Sources/Server/OpenAPIDocument.swift so the installed binary serves it at
# GET /openapi.yaml. Run after editing openapi.yaml; OpenAPIDocumentTests fails when the two differ.
set -euo pipefail
cd "$(dirname "$0")/.."
out=Sources/Server/OpenAPIDocument.swift
if grep -q '"####' openapi.yaml; then echo "error: openapi.yaml contains the raw-string delimiter" >&2; exit 1; fi
{
  echo "// A byte-identical copy of openapi.yaml (scripts/embed-openapi.sh writes it; OpenAPIDocumentTests"
  echo "// checks it). Edit openapi.yaml, never this one."
  echo "enum OpenAPIDocument {"
  echo "    static let yaml = ####\"\"\""
  cat openapi.yaml
  echo "\"\"\"####"
  echo "}"
} > "$out.tmp"
mv "$out.tmp" "$out"
