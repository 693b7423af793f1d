#!/usr/bin/env bash
# The demo: a sandbox school directory, then each job in turn (demo/NN-*.sh, in order).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export DEMO_DIR=${1:-$PWD/demo-run}
export AUPCTL_CONFIG=$DEMO_DIR/aupctl.toml
mkdir -p "$DEMO_DIR"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
export -f step
for part in "$here"/[0-9][0-9]-*.sh; do
  # shellcheck source=/dev/null
  source "$part"
done
printf '\nThe sandbox is still running: `aupctl sandbox stop --dir %s` ends it.\n' "$DEMO_DIR"
