#!/usr/bin/env bash
# The whole test suite: formatting, vet, race-enabled tests, and a short
# fuzz run of every decoder. Everything it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m ./...
# Fuzz budgets are execution counts, not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a clean run with "context deadline
# exceeded" at the deadline (golang/go#75804).
go test -run '^$' -fuzz FuzzDecode -fuzztime 1000000x ./internal/protocol/
go test -run '^$' -fuzz FuzzParseHead -fuzztime 250000x ./internal/transport/
go test -run '^$' -fuzz FuzzClientAddr -fuzztime 200000x ./internal/transport/
go test -run '^$' -fuzz FuzzDecodePost -fuzztime 100000x .
go test -run '^$' -fuzz FuzzInputDecode -fuzztime 200000x ./examples/arena/
go test -run '^$' -fuzz FuzzOnPositional -fuzztime 100000x ./game/

# The JavaScript client (clients/js): type check, bundle freshness, Node
# unit and integration tests, and the demo pages in headless Chromium,
# against real server processes.
(
  cd clients/js
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
  npm test
)
