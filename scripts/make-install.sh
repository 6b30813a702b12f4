#!/usr/bin/env bash
# make install: (re)builds the binary and installs this checkout as the rotate-key plugin of the given Helm
# (default: helm on PATH), into $(helm env HELM_PLUGINS). An existing rotate-key plugin is replaced.
set -euo pipefail
helm=${1:-helm}
root=$(cd "$(dirname "$0")/.." && pwd)
make -C "$root" --no-print-directory build
plugins=$("$helm" env HELM_PLUGINS)
if "$helm" plugin list 2>/dev/null | awk 'NR>1{print $1}' | grep -qx rotate-key; then
  "$helm" plugin uninstall rotate-key
fi
echo "installing $root into $plugins"
"$helm" plugin install "$root"
