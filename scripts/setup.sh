#!/usr/bin/env bash
# Install everything kumocore needs on a fresh Debian machine: the system packages the
# tests and benchmarks start (redis-server, Postfix's smtp-source/smtp-sink, swaks,
# opendkim-tools, opendkim, chromium + chromium-driver for the status page's browser tests,
# haproxy/dante for the proxy tests, rabbitmq/nats for the log-hook tests, strace), a virtualenv at
# .venv with core, every built-in plugin and dev tools, and the benchmark's Node.js peers
# (Haraka and haraka-plugin-dkim, pinned by bench/peers/package-lock.json).
# With --examples it also installs the example third-party plugins of docs/examples (the
# tests use them; `make serve` must not load them, so it runs without that flag and
# removes them if an earlier `make test` installed them).
set -euo pipefail
cd "$(dirname "$0")/.."
with_examples=no
[ "${1:-}" = "--examples" ] && with_examples=yes
step() { echo "setup: $*" >&2; }

declare -A wanted=(
  [redis-server]=redis-server
  [/usr/sbin/smtp-source]=postfix
  [swaks]=swaks
  # the README's first-delivery walkthrough (tests/docs/test_readme_walkthrough.py)
  [openssl]=openssl
  [curl]=curl
  [opendkim-testmsg]=opendkim-tools
  [chromium]=chromium          # the status page's browser tests (tests/status)
  [chromedriver]=chromium-driver
  # Real egress/inbound proxies for the proxy tests (started by the tests, never as services).
  [/usr/sbin/haproxy]=haproxy
  [/usr/sbin/danted]=dante-server
  # brokers the log-hook tests start on loopback (tests/loghooks)
  [/usr/lib/rabbitmq/bin/rabbitmq-server]=rabbitmq-server
  [nats-server]=nats-server
  [/usr/sbin/opendkim]=opendkim
  [strace]=strace  # orders spool syncs before the 250 (tests/reliability)
  [gcc]=gcc  # builds reception's C line check (setup.py; optional: without it, NumPy) and bench/perf/sink.c
  # the word list of kumo.string.normalize_smtp_response (kumocore/logs/response_normalize.py)
  [/usr/share/dict/words]=wamerican
)
# Debian's own Python, which the virtualenv is made from when it is 3.11 or later (below):
# its venv module's ensurepip and the headers the C line check compiles against.
if [ -x /usr/bin/python3 ]; then
  debian_python=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  wanted[/usr/lib/python$debian_python/ensurepip]=python3-venv
  wanted[/usr/include/python$debian_python/Python.h]=python3-dev
fi
missing=()
for probe in "${!wanted[@]}"; do
  command -v "$probe" >/dev/null 2>&1 || [ -e "$probe" ] || missing+=("${wanted[$probe]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]} (a minute or two)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  # Postfix is only wanted for its load tools: never configure or start a mail system.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's package starts an opendkim service; the benchmark runs its own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q opendkim 2>/dev/null; then
  systemctl stop opendkim || true
fi

# The benchmark's Haraka peer (make bench). It needs Node.js 20 or later; without it the
# short benchmark says so and runs the other sides, so this step never fails the set-up.
if [ ! -d bench/peers/node_modules/Haraka ] || [ bench/peers/package-lock.json -nt bench/peers/node_modules/.package-lock.json ]; then
  if command -v npm >/dev/null 2>&1 && node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' 2>/dev/null; then
    step "npm: Haraka and haraka-plugin-dkim for the benchmark (bench/peers)"
    npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error >&2 \
      || echo "setup: npm ci in bench/peers failed: the benchmark will run without Haraka" >&2
  else
    echo "setup: Node.js 20+ with npm not found: the benchmark will run without Haraka" >&2
  fi
fi

# The interpreter's build matters: kumocore's message path is Python, and an
# optimised CPython build (profile-guided and link-time optimised, libpython linked in)
# ran it with 4-14 % less CPU per message than a plain build such as pyenv's default
# (docs/performance.md, "Twenty-fourth round"). Debian's /usr/bin/python3 is such a
# build, so it is preferred when it is 3.11 or later and can make a virtualenv;
# PYTHON=/path/to/python overrides the choice.
usable() { "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  for candidate in /usr/bin/python3 python3; do
    if usable "$candidate"; then PYTHON=$candidate; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  step "creating the virtualenv .venv with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
plugins=()
for dir in plugins/*/; do
  [ -f "$dir/pyproject.toml" ] && plugins+=(-e "$dir")
done
examples=()
for dir in docs/examples/*/; do
  [ -f "$dir/pyproject.toml" ] && examples+=(-e "$dir")
done
log=$(mktemp)
step "pip: kumocore, $(( ${#plugins[@]} / 2 )) built-in plugins and the dev tools (a few minutes on a fresh machine)"
if ! .venv/bin/pip install -q -e ".[dev,fast,loghooks]" "${plugins[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: pip install failed" >&2
  exit 1
fi
if [ "$with_examples" = yes ]; then
  step "pip: the example plugins of docs/examples (for the tests)"
  if ! .venv/bin/pip install -q "${examples[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install of the examples failed" >&2
    exit 1
  fi
fi
rm -f "$log"
echo "kumocore installed: $(.venv/bin/kumocore --version)"
