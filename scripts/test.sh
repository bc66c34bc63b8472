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
# The slowest files start first, so that a parallel run does not end with one of them running
# alone on one core (measured with CI=true npm test on 2 cores: search-quality ~2.4 min,
# crash-recovery and demo ~1 min each, patch-run-race and embeddings-local ~40 s; most files take
# a few seconds). Everything else keeps its sorted order.
slow_first=(
  test/integration/search-quality.test.ts
  test/integration/crash-recovery.test.ts
  test/e2e/demo.test.ts
  test/e2e/cli.test.ts
  test/integration/patch-run-race.test.ts
  test/integration/embeddings-local.test.ts
  test/integration/fleet.test.ts
  test/integration/run-progress.test.ts
  test/e2e/store-copy.test.ts
)
ordered=()
for f in "${slow_first[@]}"; do
  for g in "${files[@]}"; do [ "$g" = "$f" ] && ordered+=("$g"); done
done
for g in "${files[@]}"; do
  case " ${slow_first[*]} " in *" $g "*) ;; *) ordered+=("$g") ;; esac
done
files=("${ordered[@]}")
exec node --import tsx --test --test-reporter=spec --test-concurrency="${TEST_CONCURRENCY:-2}" "${files[@]}"
