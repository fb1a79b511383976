#!/usr/bin/env bash
# Copies migrations/*.sql into Sources/Registry/Migrations/EmbeddedMigrations.swift so the
# installed binary carries its schema. Run after adding a migration; RegistryTests'
# EmbeddedMigrationsTests fails when the two differ.
set -euo pipefail
cd "$(dirname "$0")/.."
out=Sources/Registry/Migrations/EmbeddedMigrations.swift
{
  echo "// A byte-identical copy of migrations/*.sql (scripts/embed-migrations.sh writes it;"
  echo "// EmbeddedMigrationsTests checks it). Edit the .sql files, never this one."
  echo "enum EmbeddedMigrations {"
  echo "    static let files: [(fileName: String, sql: String)] = ["
  for f in migrations/[0-9][0-9][0-9][0-9]_*.sql; do
    if grep -q '"####' "$f"; then echo "error: $f contains the raw-string delimiter" >&2; exit 1; fi
    echo "        (\"$(basename "$f")\", ####\"\"\""
    cat "$f"
    echo ""
    echo "\"\"\"####),"
  done
  echo "    ]"
  echo "}"
} > "$out.tmp"
mv "$out.tmp" "$out"
