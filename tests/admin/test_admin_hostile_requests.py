"""Malformed admin requests of every kind, from a trusted client: each gets its 4xx and a
JSON error of bounded size; an untrusted peer cannot make the node compute its metrics or
views (401 before any work); and scrapes that come together share one computation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from kumocore.admin import scrape
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode

LONG = "x" * 7000
BAD_REQUESTS: list[tuple[str, str, bytes | None, int]] = [
    ("GET", "/api/admin/inspect-message/v1", None, 400),
    ("GET", f"/api/admin/inspect-message/v1?id={LONG}", None, 404),
    ("GET", "/api/admin/inspect-message/v1?id=%00%ff", None, 404),
    ("GET", "/api/admin/inspect-sched-q/v1", None, 400),
    ("GET", "/api/admin/inspect-sched-q/v1?queue_name=a&limit=-1", None, 400),
    ("GET", "/api/admin/inspect-sched-q/v1?queue_name=a&limit=1e9", None, 400),
    ("GET", f"/api/admin/inspect-sched-q/v1?queue_name=a&limit={'9' * 30}", None, 400),
    ("GET", "/api/admin/inspect-sched-q/v1?queue_name=a&limit=%EF%BC%91", None, 400),
    ("GET", "/api/admin/inspect-sched-q/v1?queue_name=a&want_body=yes", None, 400),
    ("GET", "/api/admin/queue-summary/v1?limit=x", None, 400),
    ("GET", "/api/admin/queue-summary/v1?queue=a", None, 400),
    ("GET", "/api/admin/inspect-ready-q/v1", None, 400),
    ("GET", "/api/admin/inspect-ready-q/v1?queue_name=nope", None, 404),
    ("GET", "/api/admin/no-such-endpoint/v1", None, 404),
    ("PUT", "/api/admin/queue-summary/v1", b"{}", 405),
    ("POST", "/api/admin/resolve-egress-path/v1", b"{}", 405),
    ("POST", "/api/admin/rebind/v1", b"[]", 400),
    ("POST", "/api/admin/rebind/v1", b"{}", 400),
    ("POST", "/api/admin/rebind/v1", b'{"reason": "x", "data": {"a": 1}}', 400),
    ("POST", "/api/admin/rebind/v1", b"[" * 100_000, 400),
    ("POST", "/api/admin/rebind/v1", b"\xff\xfe", 400),
    ("POST", "/api/admin/rebind/v1", b'{"reason": "\\ud800"}', 400),
    ("POST", "/api/admin/bounce/v1", b"", 400),
    ("POST", "/api/admin/bounce/v1", b"null", 400),
    ("POST", "/api/admin/bounce/v1", b'{"reason": 5}', 400),
    ("POST", "/api/admin/bounce/v1", b'{"reason": "x", "duration": "forever"}', 400),
    ("POST", "/api/admin/bounce/v1", b'{"reason": "x", "duration": "99999999999999999h"}', 400),
    ("POST", "/api/admin/bounce/v1", b'{"reason": "x", "expires": "soon"}', 400),
    ("POST", "/api/admin/bounce/v1", b'{"reason": "x", "queue_names": [1]}', 400),
    ("POST", "/api/admin/bounce/v1", b'{"reason": "x", "domain": ["a"]}', 400),
    ("POST", "/api/admin/suspend/v1", b'{"reason": "x", "bogus": 1}', 400),
    ("POST", "/api/admin/suspend/v1", b'{"reason": "x", "duration": 5}', 400),
    ("DELETE", "/api/admin/bounce/v1", b'{"id": 5}', 400),
    ("DELETE", "/api/admin/bounce/v1", b'{"id": "nope"}', 404),
    ("DELETE", "/api/admin/suspend/v1", b'{"id": "' + b"z" * 100_000 + b'"}', 404),
    ("POST", "/api/admin/suspend-ready-q/v1", b'{"name": 5, "reason": "x"}', 400),
    ("DELETE", "/api/admin/suspend-ready-q/v1", b'{"id": "nope"}', 404),
    ("POST", "/api/admin/spool-compact/v1", b'{"name": 5}', 400),
    ("POST", "/api/admin/spool-compact/v1", b'{"name": "nope"}', 404),
    ("POST", "/api/admin/abort-ready-q-conn/v1", b"{}", 400),
    ("POST", "/api/admin/bump-config-epoch", b'{"x": 1}', 400),
    ("POST", "/api/admin/xfer/v1", b"{}", 400),
]


async def request(session: aiohttp.ClientSession, node: Node, method: str, path: str,
                   body: bytes | None) -> tuple[int, str, bytes]:  # fmt: skip
    async with session.request(method, node.http_url + path, data=body,
                               headers={"Content-Type": "application/json"}) as response:
        return response.status, response.content_type, await response.read()


async def test_every_malformed_admin_request_gets_its_4xx_and_a_json_error(
    make_node: MakeNode,
) -> None:
    node = await make_node(sink=False)
    async with aiohttp.ClientSession() as session:
        for method, path, body, expected in BAD_REQUESTS:
            status, content_type, raw = await request(session, node, method, path, body)
            where = f"{method} {path[:60]} {(body or b'')[:40]!r}"
            assert (status, content_type) == (expected, "application/json"), (where, raw[:200])
            error = json.loads(raw)["error"]
            assert isinstance(error, str) and error, where
            # An error echoes what it was given only so far: never a 100 KB answer.
            assert len(raw) < 16_000, where


async def test_an_untrusted_peer_cannot_make_the_node_collect_its_metrics(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = await make_node(sink=False)
    collected = 0

    def refuse(services: Any) -> Any:
        nonlocal collected
        collected += 1
        raise AssertionError("an untrusted peer made the node collect its metrics")

    monkeypatch.setattr(scrape, "collect_steps", refuse)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.5", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        for path in ("/metrics", "/metrics.json", "/api/admin/queue-summary/v1",
                     "/api/admin/status/v1"):
            async with session.get(node.http_url + path) as response:
                assert response.status == 401, path
    assert collected == 0


async def test_scrapes_that_arrive_together_share_one_collection(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = await make_node(sink=False)
    collected = 0
    real = scrape.collect_steps

    def counting(services: Any) -> Any:
        nonlocal collected
        collected += 1
        return real(services)

    monkeypatch.setattr(scrape, "collect_steps", counting)
    async with aiohttp.ClientSession() as session:

        async def get() -> int:
            async with session.get(node.http_url + "/metrics") as response:
                await response.read()
                return response.status

        assert await asyncio.gather(*(get() for _ in range(12))) == [200] * 12
        assert collected <= 3, collected  # one, and one more for those that came during it
        # A scrape alone afterwards computes anew: it sees what happened before it.
        before = collected
        await node.send(recipients="late@dest.test")
        status, text = await node.admin("GET", "/metrics")
    assert status == 200 and collected == before + 1
    assert 'total_messages_received{service="esmtp_listener"} 1.0' in text
