#!/usr/bin/env bash
# fuzz.sh DURATION — runs every Go fuzz target of the module for DURATION each (the seed corpus under
# testdata/fuzz is kept in git; new failing inputs land there and fail `go test` until fixed).
set -euo pipefail
duration=${1:-10s}
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
