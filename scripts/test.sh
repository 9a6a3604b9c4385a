#!/usr/bin/env bash
# The README's test command: installs test extras and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export SIGMAHUNT_CACHE_DIR="${SIGMAHUNT_CACHE_DIR:-$(mktemp -d)}"
python3 -m pytest -q -p no:cacheprovider "$@"
