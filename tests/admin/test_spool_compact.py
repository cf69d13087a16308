"""KumoMTA's ``spool-compact``: ``POST /api/admin/spool-compact/v1`` and
``kumocore spool-compact --name NAME`` flush and fully compact a RocksDB spool on a real
node, keep what it holds, share one compaction between requests that overlap, and refuse
what is not a spool with a JSON error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from kumocore.spool.recovering import configured_kind
from kumocore.testing import Node
from kumocore.testing.plugin import MakeNode
from tests.support.admin_cli import run_cli

COMPACT = "/api/admin/spool-compact/v1"


def _sst_files(node: Node, spool: str) -> list[Path]:
    return sorted(Path(node.runtime.config.spools[spool].path).glob("*.sst"))


async def _post(node: Node, body: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(
            node.http_url + COMPACT, data=body,
            headers={"Content-Type": "application/json"}) as response:  # fmt: skip
        return response.status, await response.text()


async def test_a_compacted_rocksdb_spool_keeps_only_what_it_holds(make_node: MakeNode) -> None:
    node = await make_node(spool="rocksdb")
    await node.send(recipients=[f"r{n}@example.com" for n in range(40)])
    await node.wait_for("Delivery", count=40)
    await node.send(recipients="tempfail@example.com", subject="still waiting")
    await node.wait_for("TransientFailure")
    [waiting] = node.runtime.services.queues.messages.values()
    for spool in ("data", "meta"):
        assert await node.admin("POST", COMPACT, {"name": spool}) == (200, "")
        # Flushed and compacted to the bottom level: the 40 delivered messages' records
        # and their deletions are gone, one file holds the message still waiting.
        assert len(_sst_files(node, spool)) == 1, spool
    status, answer = await node.admin(
        "GET", f"/api/admin/inspect-message/v1?id={waiting.id}&want_body=true")
    assert status == 200 and "still waiting" in answer["message"]["data"]


async def test_overlapping_requests_share_one_compaction(make_node: MakeNode) -> None:
    node = await make_node(spool="rocksdb")
    spool = configured_kind(node.runtime.services.store.data)  # the RocksDB spool itself
    compactions = 0
    real = spool.compact  # type: ignore[attr-defined]

    async def counted() -> None:
        nonlocal compactions
        compactions += 1
        await asyncio.sleep(0.2)  # long enough for the other requests to arrive
        await real()

    spool.compact = counted  # type: ignore[attr-defined]
    answers = await asyncio.gather(*(node.admin("POST", COMPACT, {"name": "data"})
                                     for _ in range(5)))  # fmt: skip
    assert answers == [(200, "")] * 5 and compactions == 1
    assert await node.admin("POST", COMPACT, {"name": "data"}) == (200, "")
    assert compactions == 2  # a later request runs its own


async def test_what_is_not_a_spool_is_refused_with_a_json_error(make_node: MakeNode) -> None:
    node = await make_node(spool="rocksdb")
    status, answer = await node.admin("POST", COMPACT, {"name": "bodies"})
    assert status == 404
    assert answer["error"] == "no spool named 'bodies'; this node has 'data', 'meta'"
    for body, error in ((b'{}', "field 'name' is required"),
                        (b'{"name": 7}', "field 'name' is required"),
                        (b'{"name": "data", "force": true}', "unknown field(s) 'force'"),
                        (b'["data"]', ""), (b"not json", "")):  # fmt: skip
        status, text = await _post(node, body)
        assert status == 400 and error in json.loads(text)["error"], body


async def test_a_spool_kind_without_compaction_has_nothing_to_do(make_node: MakeNode) -> None:
    node = await make_node()  # memory spools
    assert await node.admin("POST", COMPACT, {"name": "meta"}) == (200, "")


async def test_the_cli_prints_nothing_when_it_worked_and_the_error_when_not(
    make_node: MakeNode, capsys: Any
) -> None:
    node = await make_node(spool="rocksdb")
    endpoint = ("--endpoint", node.http_url)
    assert await run_cli(capsys, "spool-compact", "--name", "data", *endpoint) == (0, "", "")
    code, out, err = await run_cli(capsys, "spool-compact", "--name", "nope", *endpoint)
    assert (code, out) == (1, "") and "no spool named 'nope'" in json.loads(err)["error"]
