"""The delivery client is imported with the node, before it listens, not by the first
connection: importing it (TLS, DANE, MTA-STS, the wire format) took 20-150 ms of the event
loop in one step at a fresh node's first delivery, a stall every other client saw.

Run in a child process: this test process has long imported all of them."""

from __future__ import annotations

import json
import subprocess
import sys

DELIVERY_MODULES = (
    "kumocore.delivery.client",
    "kumocore.delivery.broken_tls",
    "kumocore.delivery.dane",
    "kumocore.delivery.mta_sts",
    "kumocore.config.protocols",
)

CHILD = (
    "import json, sys\n"
    "import kumocore.node.server\n"
    f"print(json.dumps([m for m in {DELIVERY_MODULES!r} if m not in sys.modules]))\n"
)


def test_starting_a_node_imports_the_delivery_client_before_any_connection() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
