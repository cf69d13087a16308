"""Two nodes in two processes, one Redis: the limits hold for both together."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.common.redis_server import RedisServer
from tests.plugins.redis_throttles import fleet_node

NODE_SCRIPT = Path(fleet_node.__file__)
WINDOW = 2.0


def read(node: subprocess.Popen[str]) -> dict[str, Any]:
    assert node.stdout is not None
    line = node.stdout.readline()
    if not line:
        _, err = node.communicate(timeout=10)
        pytest.fail(f"fleet node exited early:\n{err}")
    return dict(json.loads(line))


def write(node: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert node.stdin is not None
    node.stdin.write(json.dumps(message) + "\n")
    node.stdin.flush()


@pytest.mark.slow
def test_two_nodes_sharing_redis_enforce_one_rate_and_one_connection_limit() -> None:
    with RedisServer() as server:
        command = [sys.executable, str(NODE_SCRIPT), server.url]
        pipe = subprocess.PIPE
        nodes = [
            subprocess.Popen(command, text=True, stdin=pipe, stdout=pipe, stderr=pipe)
            for _ in range(2)
        ]
        try:
            assert all(read(node) == {"ready": True} for node in nodes)
            start = time.time() + 0.2  # both are connected: start them together
            for node in nodes:
                write(node, {"start": start, "window": WINDOW})
            reports = [read(node) for node in nodes]
            for node in nodes:
                write(node, {"release": True})
            assert all(node.wait(timeout=20) == 0 for node in nodes)
        finally:
            for node in nodes:
                if node.poll() is None:
                    node.kill()
                node.communicate(timeout=10)

    assert not any(report["degraded"] for report in reports)
    allowed = sum(report["allowed"] for report in reports)
    spec = fleet_node.SPEC
    # GCRA over a fresh bucket: the burst, then one per interval; +1 for the boundary.
    ceiling = spec.capacity + spec.limit * WINDOW / spec.period + 1
    assert allowed <= ceiling, reports
    # Each node alone would have been allowed the whole ceiling; together they share it.
    assert all(0 < report["allowed"] < allowed for report in reports), reports
    assert allowed >= spec.capacity + 5, reports  # the rate was in fact being used
    assert sum(report["leases"] for report in reports) == fleet_node.LIMIT, reports
