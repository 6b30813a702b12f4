#!/usr/bin/env bash
# fuzz.sh BUDGET — runs every Go fuzz target of the module with -fuzztime BUDGET each (the seed corpus under
# testdata/fuzz is kept in git; new failing inputs land there and fail `go test` until fixed).
# The budget is a count of executions ("20000x"), not a duration: on Go 1.26 a duration races the fuzz
# coordinator's deadline and fails with a bare "context deadline exceeded" (golang/go#75804, fixed in Go 1.27).
set -euo pipefail
duration=${1:-100000x}
cd "$(dirname "$0")/.."
count=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz: $pkg $target for $duration"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" "$pkg"
    count=$((count + 1))
  done
done
echo "fuzz: ran $count targets for $duration each"
