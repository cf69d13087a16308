"""The `kumocore` command line, run as a real subprocess like an operator would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUMOCORE = Path(sys.executable).with_name("kumocore")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KUMOCORE), *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=ROOT)


def write_policy(tmp_path: Path, body: str) -> Path:
    policy = tmp_path / "policy.py"
    policy.write_text("from kumocore import hookimpl\n\n@hookimpl\ndef kumo_init(kumo):\n"
                      + "".join(f"    {line}\n" for line in body.splitlines()))
    return policy


def test_version_is_printed() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("kumocore ")


def test_python_rendering_of_the_reference_policy_validates(tmp_path: Path) -> None:
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    # validate signs a sample message, so the policy's DKIM key must exist.
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    key_file = tmp_path / "dkim" / "examplecorp.com" / "dkim1024.key"
    key_file.parent.mkdir(parents=True)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    env = {**os.environ, "KUMOCORE_VAR": str(tmp_path), "KUMOCORE_DKIM_DIR": str(tmp_path / "dkim")}
    result = run("validate", "--policy", "docs/examples/example_policy.py", env=env)
    assert result.returncode == 0, result.stderr
    assert "2 spools, 1 ESMTP and 2 HTTP listeners, 5 egress sources, 2 egress pools" in (
        result.stdout)


def test_python_example_policy_without_its_dkim_key_fails_validation_naming_the_file(
    tmp_path: Path,
) -> None:
    import os

    env = {**os.environ, "KUMOCORE_VAR": str(tmp_path), "KUMOCORE_DKIM_DIR": str(tmp_path)}
    result = run("validate", "--policy", "docs/examples/example_policy.py", env=env)
    assert result.returncode == 1
    assert f"{tmp_path}/examplecorp.com/dkim1024.key': cannot read key file" in result.stderr


def test_unknown_key_fails_validation_naming_the_key(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "kumo.start_esmtp_listener(listen='127.0.0.1:0', "
                                    "relay_hostz=['127.0.0.1'])")
    result = run("validate", "--policy", str(policy))
    assert result.returncode == 2
    assert "relay_hostz" in result.stderr and "relay_hosts" in result.stderr


def test_bad_duration_fails_validation_naming_the_key(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "kumo.make_queue_config(max_age='5 fortnights')")
    result = run("validate", "--policy", str(policy))
    assert result.returncode == 2
    assert "max_age" in result.stderr and "5 fortnights" in result.stderr


def test_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run("validate", "--policy", str(tmp_path / "nope.lua"))
    assert result.returncode == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize("plugin", ["lua_policy", "rocksdb_spool", "local_logs",
                                    "bounce_classifier", "redis_throttles"])
def test_plugins_lists_every_builtin_with_its_hooks(plugin: str) -> None:
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{plugin}  ("))
    assert "kumocore-" in lines[start]  # its own distribution, like a third-party plugin
    hooks = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        hooks.append(line.strip())
    assert hooks and all(hook.startswith("kumo_") for hook in hooks)
