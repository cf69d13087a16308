"""The example policies of docs/routing.md load and pass `kumocore validate` (Lua and
Python), asking get_queue_config about the domains they route specially."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUMOCORE = Path(sys.executable).with_name("kumocore")


def _example(language: str) -> str:
    text = (ROOT / "docs" / "routing.md").read_text()
    block = text.split(f'=== "{language}"\n\n    ```{language.lower()}\n')[1].split("    ```")[0]
    return "\n".join(line[4:] for line in block.splitlines())


@pytest.mark.parametrize("language", ["Lua", "Python"])
def test_routing_page_example_policy_validates(language: str, tmp_path: Path) -> None:
    policy = tmp_path / ("policy.lua" if language == "Lua" else "policy.py")
    policy.write_text(_example(language))
    result = subprocess.run(
        [str(KUMOCORE), "validate", "--policy", str(policy), "--domain", "relayed.example",
         "--domain", "archive.example", "--domain", "example.com"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
