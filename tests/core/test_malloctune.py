"""The server's allocator settings (kumocore.node.malloctune): applied in a fresh
process, measured by what glibc does with them, and the operator's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

#: A child that frees and takes 100 KB buffers as reception does, and prints its page faults.
CHILD = """
import resource, sys
from kumocore.node.malloctune import tune_allocator
applied = tune_allocator() if sys.argv[1] == "tuned" else {}
keep = [bytes(300_000) for _ in range(4)]  # the heap's top, above the churn
del keep
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2000):
    pieces = [bytearray(100_000 + n) for n in range(8)]
    del pieces
print(sorted(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout.split("]")
    return out[0] + "]", int(out[1])


def test_freed_body_sized_buffers_are_reused_without_page_faults() -> None:
    applied, tuned_faults = _run("tuned")
    assert applied == "['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_']"
    _, default_faults = _run("default")
    assert tuned_faults < 200  # 16,000 buffers of 100 KB: their pages are reused
    assert default_faults > 10 * tuned_faults, (default_faults, tuned_faults)


def test_an_operators_own_setting_is_left_alone() -> None:
    applied, _ = _run("tuned", MALLOC_TRIM_THRESHOLD_="1048576")
    assert applied == "['MALLOC_MMAP_THRESHOLD_']"
