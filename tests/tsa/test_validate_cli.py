"""``kumocore tsa validate``: a tsa-daemon policy is checked as ``tsa serve`` would load
it, and nothing listens."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from bench.common.serve_process import free_port
from tests.tsa.test_daemon_policy import listener, write_policy

KUMOCORE = Path(sys.executable).with_name("kumocore")


def _validate(policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KUMOCORE), "tsa", "validate", "--policy", str(policy)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_good_daemon_policy_is_summed_up_and_nothing_listens(tmp_path: Path) -> None:
    port = free_port()
    policy = write_policy(tmp_path, f"{listener(port)}\n"
                          f"tsa.configure_tsa_db_path '{tmp_path}/tsa.db'")  # fmt: skip
    result = _validate(policy)
    assert result.returncode == 0, result.stderr
    assert "rules from tsa_load_shaping_data, store local" in result.stdout
    assert f"listening on 127.0.0.1:{port}" in result.stdout
    assert f"state {tmp_path}/tsa.db.state" in result.stdout
    with socket.socket() as probe:  # the port was not taken
        probe.bind(("127.0.0.1", port))


def test_a_broken_shaping_file_fails_with_serves_error(tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text('[["x.test".automation]]\nregex = "("\n')
    result = _validate(write_policy(tmp_path, listener(free_port())))
    assert result.returncode == 1
    assert result.stderr.startswith("kumocore tsa validate: ")
    assert "rules.toml" in result.stderr


def test_a_listener_option_kumomta_does_not_take_fails(tmp_path: Path) -> None:
    result = _validate(write_policy(tmp_path, listener(free_port(), "bogus_option = 1")))
    assert result.returncode == 1
    assert "bogus_option" in result.stderr
