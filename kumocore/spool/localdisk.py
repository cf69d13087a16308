"""Spool kind ``LocalDisk`` (KumoMTA's default): one file per message in a directory tree.

A put writes ``<dir>/<id[:2]>/<id>.tmp``, fsyncs it, renames it into place and fsyncs the
directory, so a renamed file is durable and a torn write is never visible. Puts that
arrive together are committed together: one worker-thread pass fsyncs every file of the
batch and each touched directory once. RocksDB (``plugins/rocksdb_spool``) is faster for
large queues; this kind needs nothing beyond the standard library.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kumocore.errors import ConfigError

_TMP = ".tmp"


class LocalDiskSpool:
    """A durable key → bytes map on the local filesystem."""

    def __init__(self, name: str, path: str, *, flush: bool = False, **_: Any) -> None:
        self.name = name
        self.root = Path(path)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"spool {name!r}: cannot create {path!r}: {exc}") from exc
        self._pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._remove_torn_writes()

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid spool key {key!r}")
        return self.root / key[:2] / key

    def _remove_torn_writes(self) -> None:
        """Temp files are writes that never completed (a crash before the rename)."""
        for tmp in self.root.glob(f"*/*{_TMP}"):
            tmp.unlink(missing_ok=True)

    async def put(self, key: str, value: bytes) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, bytes(value), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._commit, [(k, v) for k, v, _ in batch])
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _commit(self, items: list[tuple[str, bytes]]) -> None:
        directories: set[Path] = set()
        for key, value in items:
            final = self._path(key)
            final.parent.mkdir(exist_ok=True)
            tmp = final.with_name(final.name + _TMP)
            with open(tmp, "wb") as handle:
                handle.write(value)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
            directories.add(final.parent)
        for directory in directories:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    async def get(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        for shard in self._shards():
            for entry in sorted(shard.iterdir()):
                if entry.name.endswith(_TMP):
                    continue
                try:
                    value = entry.read_bytes()
                except FileNotFoundError:  # deleted while we were scanning
                    continue
                yield entry.name, value

    async def keys(self) -> AsyncIterator[str]:
        # Listed on a thread, one shard directory at a time: a large spool never stalls
        # the loop. Shards are the first two characters, so this is key order.
        shards = await asyncio.to_thread(self._shards)
        for shard in shards:
            names = await asyncio.to_thread(_list_shard, shard)
            for name in names:
                yield name

    def _shards(self) -> list[Path]:
        """The key directories (named by a key's first two characters), in key order.

        Anything else is not ours: ``worker-<k>`` directories are the spool shards of
        ``serve --workers N`` (kumocore.spool.shards), kept inside the spool path.
        """
        return sorted(p for p in self.root.iterdir() if len(p.name) == 2 and p.is_dir())

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer


def _list_shard(shard: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(shard) if not n.endswith(_TMP))
    except FileNotFoundError:
        return []
