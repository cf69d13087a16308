"""Changing ``kumocore serve --workers`` between runs loses no spooled mail and sends none
twice: the real ``kumocore`` script queues mail for a destination that is down, stops,
starts again with another worker count, and everything is delivered once the
destination's sink appears. A migration killed with SIGKILL half-way loses nothing.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.mail.message import Message
from kumocore.spool.localdisk import LocalDiskSpool
from kumocore.spool.shards import CRASH_AFTER_ENV, orphan_shards, owned_path
from kumocore.spool.store import MessageStore
from tests.support.worker_node import DownDestination, WorkerNode, mx_dns
from tests.support.worker_node import send as send_to

pytestmark = pytest.mark.slow

DOMAIN = "moved.test"


def _rocksdb(name: str, path: str) -> Any:
    plugin = pytest.importorskip("kumocore_rocksdb_spool")
    return plugin.RocksDBSpool(name, path)


class Node(WorkerNode):
    """A worker node whose destination is down until the test opens a sink there (its port
    held meanwhile: :class:`DownDestination`); its spool can be read while it is stopped."""

    def __init__(self, root: Path, dns: str, kind: str) -> None:
        self.kind = kind
        self.destination = DownDestination()
        super().__init__(root, dns, self.destination.port, W_KIND=kind, W_RETRY="1s",
                         W_MAX_RETRY="2s")  # fmt: skip

    def kill9(self) -> None:
        super().kill9()
        self.destination.close()

    def store(self, index: int, count: int) -> MessageStore:
        def path(name: str) -> str:
            return owned_path(str(self.root / "spool" / name), index, count)

        opener = LocalDiskSpool if self.kind == "LocalDisk" else _rocksdb
        return MessageStore(opener("data", path("data")), opener("meta", path("meta")))

    async def spooled(self, count: int) -> Counter[str]:
        """Subjects of the messages in the shards ``count`` workers own (kumocore stopped)."""
        found: Counter[str] = Counter()
        for index in range(count):
            store = self.store(index, count)
            async for message in store.recover(load_data=True):
                found[_subject(message.data)] += 1
            await store.close()
        return found


def _subject(data: bytes) -> str:
    for line in data.split(b"\r\n"):
        if line.startswith(b"Subject: "):
            return line[9:].decode()
    return ""


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with mx_dns(DOMAIN) as server:
        yield server


async def send(port: int, connection: int, count: int) -> None:
    await send_to(port, DOMAIN, connection, count)


async def deliver_all(node: Node, expected: Counter[str]) -> None:
    """Open the sink; every expected message arrives, once."""
    async with node.destination.sink() as sink:
        await sink.wait_for(sum(expected.values()), timeout=90)
        await asyncio.sleep(3.0)  # room for a duplicate to show up
        got = Counter(_subject(m.data) for m in sink.messages)
    assert got == expected


@pytest.mark.parametrize(("kind", "before", "after"), [
    ("RocksDB", 1, 2), ("LocalDisk", 1, 2), ("LocalDisk", 2, 1), ("RocksDB", 2, 3),
])  # fmt: skip
async def test_mail_queued_under_one_worker_count_is_delivered_once_under_another(
    tmp_path: Path, dns: TestDnsServer, kind: str, before: int, after: int
) -> None:
    node = Node(tmp_path, dns.address, kind)
    try:
        node.start(before)
        await node.ready()
        await asyncio.gather(*(send(node.smtp_port, c, 3) for c in range(6)))
        await node.terminate()
        queued = await node.spooled(before)
        assert sum(queued.values()) == 18 and set(queued.values()) == {1}

        node.start(after)
        await node.ready()
        if before != after and 1 in (before, after):
            assert "spool migrated to the worker count" in node.text()
        await deliver_all(node, queued)
        await node.terminate()
    finally:
        node.kill9()
    for name in ("data", "meta"):  # no shard left that nobody owns, but an emptied spool
        assert orphan_shards(str(tmp_path / "spool" / name), after) in ([], [None])


@pytest.mark.parametrize(("before", "after"), [(1, 2), (2, 1)])
async def test_a_migration_killed_half_way_loses_nothing_and_the_next_start_finishes_it(
    tmp_path: Path, dns: TestDnsServer, before: int, after: int
) -> None:
    node = Node(tmp_path, dns.address, "RocksDB")
    stores = [node.store(k, before) for k in range(before)]  # 600 messages waiting
    for n in range(600):
        await stores[n % before].save(
            Message("s@src.test", f"r{n}@{DOMAIN}", f"Subject: m{n}\r\n\r\nhello\r\n".encode())
        )
    for store in stores:
        await store.close()
    queued = await node.spooled(before)
    try:
        # SIGKILL after 300 copies: the supervisor's migration process with 2 workers,
        # the one kumocore process itself with 1.
        process = node.start(after, **{CRASH_AFTER_ENV: "300"})
        status = await asyncio.to_thread(process.wait, 60)
        assert status == (1 if after > 1 else -signal.SIGKILL), node.text()
        if after > 1:
            assert "spool migration failed" in node.text()
        assert "kumocore ready" not in node.text()
        left, moved = await node.spooled(before), await node.spooled(after)
        assert set(left) | set(moved) == set(queued)  # all there, some in both for now

        node.start(after)
        await node.ready()
        await deliver_all(node, queued)
        await node.terminate()
    finally:
        node.kill9()
