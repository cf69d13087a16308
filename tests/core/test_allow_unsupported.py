"""KumoMTA options kumocore does not implement: refused at load by `validate` and `serve`,
or run ignored (and listed as warnings) with `--allow-unsupported`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.common.redis_server import free_port
from tests.core.test_cli import ROOT, run

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.define_spool {{ name = 'data', path = '{root}/data' }}
  kumo.define_spool {{ name = 'meta', path = '{root}/meta' }}
  kumo.start_esmtp_listener {{ listen = '127.0.0.1:{port}' }}
  PATH = kumo.make_egress_path {{ aggressive_connection_opening = true }}
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {{ dispatcher_wakeup_strategy = 'Relaxed' }}
end)
"""

MESSAGE = "KumoMTA's option 'aggressive_connection_opening' is not supported by kumocore yet"


def _policy(tmp_path: Path, port: int = 0) -> Path:
    policy = tmp_path / "policy.lua"
    policy.write_text(POLICY.format(root=tmp_path, port=port))
    return policy


def test_validate_refuses_an_unsupported_option_naming_it_and_the_line(tmp_path: Path) -> None:
    result = run("validate", "--policy", str(_policy(tmp_path)))
    assert result.returncode == 2
    assert MESSAGE in result.stderr and "policy.lua:7" in result.stderr
    assert "--allow-unsupported" in result.stderr


def test_validate_with_allow_unsupported_passes_and_lists_every_ignored_option(
    tmp_path: Path,
) -> None:
    result = run("validate", "--allow-unsupported", "--policy", str(_policy(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert ("'aggressive_connection_opening' (kumo.make_egress_path) is not supported"
            in result.stderr)
    assert ("'dispatcher_wakeup_strategy' (kumo.make_egress_path) is not supported"
            in result.stderr)


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(64).startswith(b"220")
    except OSError:
        return False


def test_serve_refuses_to_start_and_starts_with_allow_unsupported(tmp_path: Path) -> None:
    port = free_port()
    policy = _policy(tmp_path, port)
    refused = run("serve", "--workers", "1", "--policy", str(policy))
    assert refused.returncode != 0 and MESSAGE in refused.stderr
    kumocore = Path(sys.executable).with_name("kumocore")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(kumocore), "serve", "--workers", "1", "--allow-unsupported",
             "--policy", str(policy)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not _banner(port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    assert "--allow-unsupported" in text and "aggressive_connection_opening" in text
