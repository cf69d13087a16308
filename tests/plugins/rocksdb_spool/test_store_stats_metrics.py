"""KumoMTA's ``rocks_spool_*`` gauges: the RocksDB spool reports them through the core's
optional ``StoreStats``, and a real node's ``/metrics`` labels them with each spool's
directory, for RocksDB spools only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kumocore_rocksdb_spool import RocksDBSpool

from kumocore import hookimpl
from kumocore.mail.ids import new_message_id
from kumocore.spool import StoreStats
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import Samples, samples, series

#: KumoMTA's list (crates/spool/src/rocks.rs), rocks_spool_load_shed_active aside.
ROCKS_GAUGES = {
    "rocks_spool_mem_table_total", "rocks_spool_mem_table_unflushed",
    "rocks_spool_mem_table_readers_total", "rocks_spool_cache_total",
    "rocks_spool_compaction_pending", "rocks_spool_estimate_pending_compaction_bytes",
    "rocks_spool_num_running_compactions", "rocks_spool_background_errors",
    "rocks_spool_write_stopped", "rocks_spool_actual_delayed_write_rate",
}  # fmt: skip


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[RocksDBSpool]:
    s = RocksDBSpool("data", str(tmp_path / "data"))
    yield s
    await s.close()


async def test_the_spool_reports_kumomta_gauges_and_mem_tables_grow_with_writes(
    spool: RocksDBSpool,
) -> None:
    assert isinstance(spool, StoreStats)
    before = spool.store_stats()
    assert set(before) == ROCKS_GAUGES
    assert all(isinstance(v, int) and v >= 0 for v in before.values())
    await asyncio.gather(*(spool.put(new_message_id(), b"x" * 2048) for _ in range(300)))
    after = spool.store_stats()
    assert after["rocks_spool_mem_table_total"] > before["rocks_spool_mem_table_total"]
    assert after["rocks_spool_mem_table_unflushed"] > before["rocks_spool_mem_table_unflushed"]
    assert after["rocks_spool_write_stopped"] == after["rocks_spool_background_errors"] == 0


async def test_a_closed_spool_reports_nothing_instead_of_raising(tmp_path: Path) -> None:
    spool = RocksDBSpool("meta", str(tmp_path / "meta"))
    await spool.close()
    assert spool.store_stats() == {}


async def _scrape(node: Node) -> Samples:
    return samples((await node.admin("GET", "/metrics"))[1])


def _directory(node: Node, spool: str) -> str:
    return str(Path(node.runtime.config.spools[spool].path))


async def test_a_node_labels_each_rocksdb_spools_gauges_with_its_directory(
    make_node: MakeNode,
) -> None:
    node = await make_node(spool="rocksdb")
    values = await _scrape(node)
    directories = {(_directory(node, "data"),), (_directory(node, "meta"),)}
    for name in ROCKS_GAUGES:
        assert set(series(values, name)) == directories, name
    # The same label values as the core's load-shedding gauge, so the two join.
    assert set(series(values, "rocks_spool_load_shed_active")) == directories


async def test_the_data_spools_mem_table_total_grows_as_messages_are_spooled(
    make_node: MakeNode,
) -> None:
    node = await make_node(spool="rocksdb")
    await node.hold()  # keep them spooled rather than delivered
    label = (_directory(node, "data"),)
    before = series(await _scrape(node), "rocks_spool_mem_table_total")[label]
    for n in range(20):
        status, _ = await node.inject({
            "envelope_sender": "sender@example.org", "recipients": [{"email": f"r{n}@a.test"}],
            "content": "Subject: hi\r\n\r\n" + "body text\r\n" * 1000})
        assert status == 200
    after = series(await _scrape(node), "rocks_spool_mem_table_total")[label]
    assert after > before


class LmdbDataRocksMeta:
    """Bodies in an LMDB spool, envelopes in a RocksDB one (both plugins installed)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @hookimpl
    def kumo_pre_init(self, kumo: Any) -> None:
        kumo.define_spool(name="data", path=str(self.root / "data"), kind="LMDB")
        kumo.define_spool(name="meta", path=str(self.root / "meta"), kind="RocksDB")


async def test_an_lmdb_spool_has_no_rocks_gauges_beside_a_rocksdb_one(
    make_node: MakeNode, tmp_path: Path,
) -> None:
    node = await make_node(plugins=[LmdbDataRocksMeta(tmp_path)])
    values = await _scrape(node)
    both = {(str(tmp_path / "data"),), (str(tmp_path / "meta"),)}
    assert set(series(values, "rocks_spool_load_shed_active")) == both  # both are defined
    for name in ROCKS_GAUGES:
        assert set(series(values, name)) == {(str(tmp_path / "meta"),)}, name


async def test_a_node_with_memory_spools_has_no_rocks_gauges(make_node: MakeNode) -> None:
    values = await _scrape(await make_node(spool="memory"))
    assert not any(name in ROCKS_GAUGES for name, _ in values)
