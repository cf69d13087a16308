"""Spool shards of ``serve --workers N``, and moving mail between them when N changes.

A single process keeps each spool at its ``kumo.define_spool`` path; with N > 1 workers,
worker k keeps it at ``<path>/worker-<k>``. Any change of N would strand mail that lives
in a shard nobody owns any more: the unsharded spool at ``<path>`` when N > 1,
``worker-<j>`` for j >= N, every ``worker-*`` when N == 1. Before anything serves, those
orphans are emptied into the owned shards (:func:`migrate`), record by record:

1. the data records a batch of meta records refer to are written to their target shard
   and synced (a spool's ``put`` returns once durable);
2. then the meta records (the commit marker, as in :mod:`kumocore.spool.store`), synced;
3. only then are they deleted from the orphan.

``kill -9`` at any point loses nothing: a message is always complete in the orphan, in
its target, or in both. A message found in both after a crash is the same key in the
same target when the next start has the same N (the target is a hash of the message id),
so re-running the move overwrites it: no duplicate. Only when N changes again before an
interrupted move was finished can a message in flight, at most one batch
(:data:`BATCH`), end up in two owned shards and be delivered twice.

A shared body (one data record for the messages of a multi-recipient transaction) is
copied to every target one of its messages goes to, and removed from the orphan with the
rest of its data records once no meta record is left there.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.errors import ConfigError
from kumocore.spool.store_recovery import QUARANTINE_PREFIX, _data_key

if TYPE_CHECKING:
    from kumocore.config.spool import SpoolDefinition
    from kumocore.spool.base import Spool, SpoolFactory

log = structlog.get_logger("kumocore.spool")

SHARD_PREFIX = "worker-"
_SHARD_NAME = re.compile(r"worker-(\d+)")
#: Messages moved per synced step; also the most a crash can leave in two shards.
BATCH = 256
#: Test hook: SIGKILL this process once that many messages were copied (not yet deleted).
CRASH_AFTER_ENV = "KUMOCORE_TEST_MIGRATION_KILL_AFTER"


def shard_path(path: str, index: int) -> str:
    """Where worker ``index`` keeps a spool defined at ``path``."""
    return str(Path(path) / f"{SHARD_PREFIX}{index}")


def owned_path(path: str, index: int, count: int) -> str:
    """The spool of worker ``index`` of ``count`` (one process: the path itself)."""
    return path if count == 1 else shard_path(path, index)


def orphan_shards(path: str, count: int) -> list[int | None]:
    """Shards of a spool at ``path`` that no worker of ``count`` owns and that exist on
    disk: None for the unsharded spool at ``path`` itself, else the shard's index."""
    root = Path(path)
    if not root.is_dir():
        return []
    found: list[int | None] = []
    unsharded = False
    for entry in root.iterdir():
        match = _SHARD_NAME.fullmatch(entry.name)
        if match is None:
            unsharded = True  # the spool's own files: a single process used this path
        elif entry.is_dir() and (count == 1 or int(match.group(1)) >= count):
            found.append(int(match.group(1)))
    found.sort(key=lambda index: index if index is not None else -1)
    if unsharded and count > 1:
        found.insert(0, None)
    return found


def target_of(message_id: str, count: int) -> int:
    """The worker that gets a migrated message: stable for a given id and count."""
    return zlib.crc32(message_id.encode()) % count


@dataclass
class _Pair:
    data: Spool
    meta: Spool

    async def close(self) -> None:
        await self.data.close()
        await self.meta.close()


class _Mover:
    """Moves every record of orphan shards into the shards of ``count`` workers."""

    def __init__(self, spools: Mapping[str, SpoolDefinition], kinds: Mapping[str, SpoolFactory],
                 count: int) -> None:  # fmt: skip
        self.spools = spools
        self.kinds = kinds
        self.count = count
        self.moved = 0
        self.crash_after = int(os.environ.get(CRASH_AFTER_ENV, "0") or 0)
        self.targets: list[_Pair] = []

    def _open(self, name: str, path: str) -> Spool:
        definition = self.spools[name]
        options: dict[str, Any] = {
            k: v for k, v in definition.to_dict().items() if k not in ("name", "kind", "path")
        }
        return self.kinds[definition.kind](name=name, path=path, **options)

    def _pair(self, shard: int | None, owned: bool = False) -> _Pair:
        def where(name: str) -> str:
            base = self.spools[name].path
            if owned:
                assert shard is not None
                return owned_path(base, shard, self.count)
            return base if shard is None else shard_path(base, shard)

        return _Pair(self._open("data", where("data")), self._open("meta", where("meta")))

    async def run(self, orphans: list[int | None]) -> None:
        self.targets = [self._pair(k, owned=True) for k in range(self.count)]
        try:
            for shard in orphans:
                source = self._pair(shard)
                try:
                    await self._drain(source)
                finally:
                    await source.close()
                for name in ("data", "meta"):
                    if shard is None:
                        _sync_deletions(self.spools[name].path)
                    else:
                        _remove_tree(shard_path(self.spools[name].path, shard))
        finally:
            for target in self.targets:
                await target.close()

    async def _drain(self, source: _Pair) -> None:
        batch: list[tuple[str, bytes]] = []
        async for key, meta in source.meta.scan():
            batch.append((key, meta))
            if len(batch) >= BATCH:
                await self._move(source, batch)
                batch = []
        if batch:
            await self._move(source, batch)
        # What is left no meta record refers to any more: shared bodies whose messages
        # all moved, or the body of a message whose meta never got written (a crash).
        leftovers = [key async for key in source.data.keys()]  # noqa: SIM118 (a spool)
        await asyncio.gather(*(source.data.delete(key) for key in leftovers))

    async def _move(self, source: _Pair, batch: list[tuple[str, bytes]]) -> None:
        bodies: dict[tuple[int, str], None] = {}
        for key, meta in batch:
            message_id = key.removeprefix(QUARANTINE_PREFIX)
            bodies[(target_of(message_id, self.count), _data_key(message_id, meta))] = None
        values = await asyncio.gather(*(source.data.get(key) for _, key in bodies))
        await asyncio.gather(*(
            self.targets[t].data.put(key, value)
            for (t, key), value in zip(bodies, values, strict=True) if value is not None
        ))  # fmt: skip
        ids = [key.removeprefix(QUARANTINE_PREFIX) for key, _ in batch]
        await asyncio.gather(*(
            self.targets[target_of(message_id, self.count)].meta.put(key, meta)
            for message_id, (key, meta) in zip(ids, batch, strict=True)
        ))  # fmt: skip
        self.moved += len(batch)
        if self.crash_after and self.moved >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: copied, not yet deleted
        await asyncio.gather(*(source.meta.delete(key) for key, _ in batch))
        # A message's own data record goes with it; a shared body may still be needed by
        # meta records of a later batch, so it waits for the sweep at the end.
        own = [i for i, (_, meta) in zip(ids, batch, strict=True) if _data_key(i, meta) == i]
        await asyncio.gather(*(source.data.delete(key) for key in own))


def _fsync_directory(path: str | Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_deletions(path: str) -> None:
    """Make the deletions in an emptied unsharded spool durable (a power cut must not bring
    its messages back after the workers delivered them): a spool kind that deletes files
    (LocalDisk) leaves them in the directories at and just below its path; RocksDB synced
    them when it closed."""
    _fsync_directory(path)
    for entry in Path(path).iterdir():
        if entry.is_dir() and _SHARD_NAME.fullmatch(entry.name) is None:
            _fsync_directory(entry)


def _remove_tree(path: str) -> None:
    """Remove an emptied orphan shard, durably (its parent directory synced)."""
    shutil.rmtree(path, ignore_errors=True)
    _fsync_directory(os.path.dirname(path))


async def migrate(
    spools: Mapping[str, SpoolDefinition], kinds: Mapping[str, SpoolFactory], count: int
) -> int:
    """Move the mail of every shard no worker of ``count`` owns into owned shards, before
    any of them serves; the number of messages moved."""
    if set(spools) != {"data", "meta"}:
        return 0
    orphans = sorted(
        set(orphan_shards(spools["data"].path, count))
        | set(orphan_shards(spools["meta"].path, count)),
        key=lambda index: -1 if index is None else index,
    )
    if not orphans:
        return 0
    mover = _Mover(spools, kinds, count)
    try:
        await mover.run(orphans)
    except ConfigError:
        raise  # a spool that cannot open says so itself
    except Exception as exc:  # a full disk, a read error: one line, and nothing is lost
        raise ConfigError(
            f"moving the spool to {count} worker(s) failed after {mover.moved} messages: "
            f"{exc}; every message is still in the old or the new shard, and the next start "
            "resumes the move") from exc
    names = ["(unsharded)" if k is None else f"{SHARD_PREFIX}{k}" for k in orphans]
    # An emptied unsharded spool keeps its (empty) files and is looked at every start.
    report = log.info if mover.moved else log.debug
    report("spool migrated to the worker count", workers=count, shards=names,
           messages=mover.moved)  # fmt: skip
    return mover.moved
