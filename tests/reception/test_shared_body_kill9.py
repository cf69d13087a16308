"""kill -9 at any step of saving or removing shared bodies: recovery loses no body a meta
still references and keeps no body that none references (LocalDisk, RocksDB, and LMDB
bodies with RocksDB envelopes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reception.shared_body_stores import BODY, open_store
from tests.support.kill9 import lines_until_killed


def run_and_kill(kind: str, path: Path, lines: int) -> tuple[dict[str, str], set[str]]:
    """Saved id -> expected head, finished ids: what the child printed before kill -9."""
    printed = lines_until_killed(["-m", "tests.reception.shared_body_child", kind, str(path)],
                                 lines)
    saved: dict[str, str] = {}
    removed: set[str] = set()
    for line in printed:
        word, _, rest = line.partition(" ")
        if word == "SAVED":
            saved.update(item.split(":") for item in rest.split())
        elif word == "REMOVING":  # a finished message, whether or not its removal ended
            removed.add(rest)
    return saved, removed


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["localdisk", "rocksdb", "lmdb"])
async def test_kill_9_while_saving_and_removing_shared_bodies_loses_and_leaks_nothing(
    tmp_path: Path, kind: str
) -> None:
    # Kill points fall at different steps: mid-transaction, mid-removal, between both.
    for round_, lines in enumerate((7, 33, 61, 90)):
        saved, removed = run_and_kill(kind, tmp_path, lines + round_)
        store = open_store(kind, str(tmp_path))
        try:
            recovered = []
            await store.recover_all(recovered)
            by_id = {m.id: m for m in recovered}
            live = set(saved) - removed
            assert live <= set(by_id), "an acknowledged message was lost"
            for message_id in live:
                data = await store.load_data(by_id[message_id])
                assert data == f"Received: {saved[message_id]}\r\n".encode() + BODY
            # Nothing left that no meta references: every data record is a live body.
            keys = [key async for key in store.data.keys()]  # noqa: SIM118 (a spool)
            referenced = {m.spool_ref[0] for m in recovered if m.spool_ref is not None}
            assert set(keys) == referenced
            # And the counts are right: removing every message empties the data spool
            # (once closed: a RocksDB spool holds a body's delete back until its meta's
            # is synced, and closing writes what waits).
            for message in recovered:
                await store.remove(message)
            await store.close()
            store = open_store(kind, str(tmp_path))
            assert [key async for key in store.data.keys()] == []  # noqa: SIM118
        finally:
            await store.close()
