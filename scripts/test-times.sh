#!/usr/bin/env bash
# Where the test time goes: the slowest XCTest suites of a `swift test` log (default: stdin).
#   bash scripts/test.sh 2>&1 | tee /tmp/t.log; bash scripts/test-times.sh /tmp/t.log
set -euo pipefail
python3 - "${1:-/dev/stdin}" <<'PY'
import re, sys
suites = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"Test Case '(\w+)\.(\w+)' (?:passed|failed) \(([0-9.]+) seconds\)", line.strip())
    if m:
        suites[m.group(1)] = suites.get(m.group(1), 0) + float(m.group(3))
total = sum(suites.values())
print(f"tests: {total:.0f} s in {len(suites)} suites; slowest:")
for name, secs in sorted(suites.items(), key=lambda kv: -kv[1])[:12]:
    print(f"  {secs:7.1f} s  {name}")
PY
