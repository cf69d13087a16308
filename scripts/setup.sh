#!/usr/bin/env bash
# Install everything kumocore needs on a fresh Debian machine: the system packages the
# tests and benchmarks start (redis-server, Postfix's smtp-source/smtp-sink, swaks,
# opendkim-tools) and a virtualenv at .venv with core, every built-in plugin and dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A wanted=(
  [redis-server]=redis-server
  [/usr/sbin/smtp-source]=postfix
  [swaks]=swaks
  [opendkim-testmsg]=opendkim-tools
)
missing=()
for probe in "${!wanted[@]}"; do
  command -v "$probe" >/dev/null 2>&1 || [ -x "$probe" ] || missing+=("${wanted[$probe]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  # Postfix is only wanted for its load tools: never configure or start a mail system.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
plugins=()
for dir in plugins/*/ docs/examples/*/; do
  [ -f "$dir/pyproject.toml" ] && plugins+=(-e "$dir")
done
log=$(mktemp)
if ! .venv/bin/pip install -q -e ".[dev,fast]" "${plugins[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: pip install failed" >&2
  exit 1
fi
rm -f "$log"
echo "kumocore installed: $(.venv/bin/kumocore --version)"
