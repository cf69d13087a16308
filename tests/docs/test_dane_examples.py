"""The DANE examples of docs/egress-security.md pass `kumocore validate` (Lua and Python);
without `options.validate` the same policy is refused, with the line that says why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUMOCORE = Path(sys.executable).with_name("kumocore")
REFUSAL = "enable_dane = true needs a DNSSEC-validating resolver, and none is configured"


def _example(language: str) -> str:
    text = (ROOT / "docs" / "egress-security.md").read_text().split("## DANE")[1]
    block = text.split(f'=== "{language}"\n\n    ```{language.lower()}\n')[1].split("    ```")[0]
    return "\n".join(line[4:] for line in block.splitlines())


def _validate(policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUMOCORE), "validate", "--policy", str(policy), "--domain", "example.com"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("language", ["Lua", "Python"])
def test_dane_example_policy_validates(language: str, tmp_path: Path) -> None:
    policy = tmp_path / ("policy.lua" if language == "Lua" else "policy.py")
    policy.write_text(_example(language))
    result = _validate(policy)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and REFUSAL not in result.stderr


@pytest.mark.parametrize(("language", "validating"), [
    ("Lua", "    options = { validate = true },\n"),
    ("Python", ', options={"validate": True}'),
])
def test_dane_without_a_validating_resolver_is_refused_at_validation(
    language: str, validating: str, tmp_path: Path,
) -> None:
    example = _example(language)
    assert validating in example
    policy = tmp_path / ("policy.lua" if language == "Lua" else "policy.py")
    policy.write_text(example.replace(validating, ""))
    result = _validate(policy)
    assert result.returncode == 1
    assert f"kumo.make_egress_path: {REFUSAL}" in result.stderr
