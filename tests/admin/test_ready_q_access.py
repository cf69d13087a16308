"""The ready-queue endpoints answer trusted hosts only: a peer outside ``trusted_hosts`` is
refused every method of them, even with HTTP Basic credentials the policy would accept,
and never reaches the handler (the suspension it asked for is not made)."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from kumocore.testing import Node
from kumocore.testing.node import SINK_HOST
from kumocore.testing.plugin import MakeNode

UNTRUSTED = "127.0.0.5"
READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
SUSPEND = "/api/admin/suspend-ready-q/v1"
#: Accepts every HTTP Basic user: credentials must still not open an admin endpoint.
POLICY = """
local kumo = require 'kumo'
kumo.on('http_server_validate_auth_basic', function(user, password) return true end)
"""
ENDPOINTS = [
    ("POST", SUSPEND, f'{{"name": "{READY_Q}", "reason": "r"}}'),
    ("GET", SUSPEND, None),
    ("DELETE", SUSPEND, '{"id": "x"}'),
    ("POST", "/api/admin/bump-config-epoch", "{}"),
    ("GET", "/api/admin/ready-q-states/v1", None),
    ("GET", f"/api/admin/inspect-ready-q/v1?queue_name={READY_Q}", None),
]


async def call(node: Node, method: str, path: str, body: str | None, *,
               basic: bool) -> tuple[int, str]:  # fmt: skip
    """(status, text) of one request from the untrusted address."""
    headers = {"Content-Type": "application/json"}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(b"ops:secret").decode()
    connector = aiohttp.TCPConnector(local_addr=(UNTRUSTED, 0))
    async with aiohttp.ClientSession(connector=connector) as session, session.request(
            method, node.http_url + path, data=body, headers=headers) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("basic", [False, True], ids=["no-credentials", "basic-credentials"])
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_an_untrusted_peer_is_refused_every_ready_queue_endpoint(
    make_node: MakeNode, method: str, path: str, body: str | None, basic: bool
) -> None:
    node = await make_node(POLICY, sink=False)
    status, text = await call(node, method, path, body, basic=basic)
    assert status == 401
    assert text.endswith(f"not permitted {method} on {path.split('?')[0]}")
    status, listed = await node.admin("GET", SUSPEND)  # from a trusted host
    assert (status, listed) == (200, [])  # nothing was suspended
