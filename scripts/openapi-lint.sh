#!/usr/bin/env bash
# Lints the OpenAPI document the server generates with Redocly CLI (recommended rules,
# redocly.yaml): without authentication (a key is optional) and with it (a key is needed). Any
# error fails; warnings are printed. Usage: bash scripts/openapi-lint.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
npx tsx scripts/openapi-document.ts "$out/openapi.json"
npx tsx scripts/openapi-document.ts "$out/openapi-auth.json" --auth
npx @redocly/cli lint --config redocly.yaml --format=stylish "$out/openapi.json" "$out/openapi-auth.json"
