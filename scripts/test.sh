#!/usr/bin/env bash
# Runs every test file under test/ with node's own test runner (tsx compiles TypeScript on the fly).
# Usage: npm test                 all tests
#        npm test -- test/unit    only the files under the given paths
set -euo pipefail
cd "$(dirname "$0")/.."
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(test)
mapfile -t files < <(find "${paths[@]}" -name '*.test.ts' | sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "no test files under: ${paths[*]}" >&2
  exit 1
fi
exec node --import tsx --test --test-reporter=spec --test-concurrency="${TEST_CONCURRENCY:-2}" "${files[@]}"
