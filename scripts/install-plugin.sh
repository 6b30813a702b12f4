#!/usr/bin/env sh
# Install/update hook of the rotate-key Helm plugin: builds bin/rotate-key from this checkout with the local Go
# toolchain when no binary is present (or with --rebuild), downloading nothing but Go modules. Runs under Helm 3 and
# Helm 4 (Helm 4 hooks get no HELM_BIN, so nothing here needs it).
set -eu
dir=${HELM_PLUGIN_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$dir"
if [ -x bin/rotate-key ] && [ "${1:-}" != "--rebuild" ]; then
  echo "rotate-key: using the existing binary $dir/bin/rotate-key"
else
  if ! command -v go >/dev/null 2>&1; then
    echo "rotate-key: cannot build the plugin: the Go toolchain (go 1.26 or newer) is not on PATH." >&2
    echo "  Install Go from https://go.dev/dl/ and run: helm plugin update rotate-key" >&2
    echo "  or build elsewhere and copy the binary to $dir/bin/rotate-key" >&2
    exit 1
  fi
  version=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' plugin.yaml)
  echo "rotate-key: building bin/rotate-key $version with $(go version)"
  mkdir -p bin
  go build -trimpath -ldflags "-s -w -X github.com/tracebloc/helm-rotate-key/internal/version.Version=v$version" \
    -o bin/rotate-key.tmp ./cmd/rotate-key
  mv bin/rotate-key.tmp bin/rotate-key
fi
ln -sf rotate-key bin/rotate-key-guard
echo "rotate-key: installed. Post-renderer: Helm 4 -> helm rotate-key install-guard; Helm 3 -> put $dir/bin/rotate-key-guard on PATH"
