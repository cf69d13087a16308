#!/usr/bin/env bash
# Build wheels of kumocore and its built-in plugins, then install them into a fresh
# virtualenv at PREFIX — the way a packager or the Dockerfile installs kumocore, with no
# checkout on the path. Usage: scripts/install-wheels.sh PREFIX [PYTHON]
set -euo pipefail
prefix=${1:?usage: scripts/install-wheels.sh PREFIX [PYTHON]}
python=${2:-python3}
cd "$(dirname "$0")/.."
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
echo "building wheels of kumocore and the built-in plugins..."
"$python" -m pip wheel -q --no-deps -w "$wheels" . plugins/*/ 2>/dev/null
echo "installing into $prefix..."
"$python" -m venv "$prefix"
"$prefix/bin/pip" install -q "$wheels"/*.whl
"$prefix/bin/kumocore" --version
