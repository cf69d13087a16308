"""The commit window closes as soon as the bodies reception announced have arrived
(``kumocore.spool.commit.arrivals``), and lasts at most ``COMMIT_WINDOW`` otherwise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kumocore_rocksdb_spool import RocksDBSpool

from kumocore.spool.commit import committer as committer_module
from kumocore.spool.commit import committer_for, expect_write

#: Long enough that a cycle that waited for it could not pass for one that did not.
LONG_WINDOW = 5.0


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[RocksDBSpool]:
    opened = RocksDBSpool("data", str(tmp_path / "data"))
    await opened.put("warm", b"up")  # the writer thread is running...
    # ...and back waiting for its next first ticket: the warm-up's future resolves just
    # before the thread looks at its inbox again, and a put it found there at once would
    # be taken as a busy writer's next cycle, with no window at all.
    await asyncio.sleep(0.1)
    yield opened
    await opened.close()


async def test_a_cycle_waits_for_an_announced_body_and_starts_once_it_arrived(
    spool: RocksDBSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(committer_module, "COMMIT_WINDOW", LONG_WINDOW)
    first, second = expect_write(), expect_write()
    first.arrived()
    started = time.monotonic()
    put_a = asyncio.ensure_future(spool.put("a", b"1"))
    await asyncio.sleep(0.05)
    assert not put_a.done()  # the second body is still on its way
    second.arrived()
    await spool.put("b", b"2")
    await put_a
    assert time.monotonic() - started < LONG_WINDOW / 2
    assert (spool.syncs, spool.records) == (2, 3)  # the warm-up's sync, then one for both


async def test_bodies_that_all_arrived_do_not_wait_for_the_window(
    spool: RocksDBSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(committer_module, "COMMIT_WINDOW", LONG_WINDOW)
    expected = expect_write()
    expected.arrived()
    expected.arrived()  # idempotent: counted once
    started = time.monotonic()
    await spool.put("a", b"1")
    assert time.monotonic() - started < LONG_WINDOW / 2
    arrivals = committer_for(asyncio.get_running_loop()).arrivals
    assert (arrivals.pending, arrivals.total_arrived) == (0, 1)


async def test_a_withdrawn_body_neither_counts_as_arrived_nor_holds_the_window_open(
    spool: RocksDBSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused body wrote nothing: the write after it is unannounced and waits."""
    monkeypatch.setattr(committer_module, "COMMIT_WINDOW", 0.2)
    expected = expect_write()
    expected.withdrawn()
    expected.arrived()  # too late: the first call counts
    arrivals = committer_for(asyncio.get_running_loop()).arrivals
    assert (arrivals.pending, arrivals.total_arrived) == (0, 0)
    started = time.monotonic()
    await spool.put("a", b"1")
    assert 0.2 <= time.monotonic() - started < 2.0


async def test_a_body_that_never_arrives_holds_the_cycle_back_at_most_the_window(
    spool: RocksDBSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(committer_module, "COMMIT_WINDOW", 0.2)
    expected = expect_write()
    try:
        started = time.monotonic()
        await spool.put("a", b"1")
        waited = time.monotonic() - started
        assert 0.2 <= waited < 2.0
    finally:
        expected.withdrawn()


async def test_writes_nobody_announced_wait_the_whole_window(
    spool: RocksDBSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(committer_module, "COMMIT_WINDOW", 0.2)
    started = time.monotonic()
    await spool.put("a", b"1")
    assert time.monotonic() - started >= 0.2
