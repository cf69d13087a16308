"""One LMDB environment per path, shared by every LMDB spool defined at that path.

Why share: a message is two records, its body (``data``) and its envelope (``meta``), and
the envelope must never be on disk without its body. In two stores that order costs two
syncs one after the other in every commit cycle. Two spools in one environment write a
cycle as one transaction, which LMDB makes durable all at once or not at all, so the
order needs no sync of its own: one commit (two ``fdatasync``: pages, then meta page)
instead of three, and one wait for the GIL less (docs/performance.md, thirteenth round).

LMDB forbids opening one environment twice in a process, so the spools of one path get
the same :class:`SharedEnvironment` here, each with databases of its own in it:
``records:<name>`` and ``ids:<name>`` (the keys alone, see :class:`Databases`). An environment
written before spools could share (one spool, databases ``bodies`` and ``ids``) keeps that
layout for the first spool that opens it; a second spool at its path is refused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

from kumocore import ConfigError
from kumocore.spool.commit import Step

if TYPE_CHECKING:
    import lmdb

__all__ = [
    "HELD_DELETES", "LEGACY", "MAP_SIZE", "Databases", "HeldDeletes", "SharedEnvironment",
    "databases_of", "open_environment", "put_record",
]

#: The most an LMDB spool may hold. LMDB reserves it as address space only; the file
#: grows with what is stored (a full disk is refused earlier, by ``min_free_space``).
MAP_SIZE = 1 << 40
#: Named databases an environment may hold: two per spool.
_MAX_DBS = 32
#: Deletes held for the next transaction at the most; beyond, they are written at once
#: (under load every cycle has a transaction anyway).
HELD_DELETES = 1024


class Databases(NamedTuple):
    """A spool's two databases: its records, and their keys alone (empty values).

    Why the keys have a database of their own: py-lmdb prefaults a record's pages when a
    cursor lands on it, so listing the keys of ``records`` would read every value; the
    orphan collection lists every key at start-up, and a million 2 KB bodies put 4 GB
    into the RSS. ``ids`` is written in the same transaction as ``records``."""

    records: Any
    ids: Any


#: The single-spool layout of environments written before spools could share one.
LEGACY = (b"bodies", b"ids")


def _names_of(spool: str) -> tuple[bytes, bytes]:
    return b"records:" + spool.encode(), b"ids:" + spool.encode()


class HeldDeletes:
    """A spool's deletes written without a sync: they wait for the next transaction, and
    reads skip them meanwhile. Touched by the writer thread and by readers' threads."""

    def __init__(self) -> None:
        self._keys: set[bytes] = set()
        self._lock = threading.Lock()

    def __contains__(self, key: bytes) -> bool:
        with self._lock:
            return key in self._keys

    def hold(self, keys: Iterable[bytes]) -> bool:
        """Hold ``keys``; False once more than :data:`HELD_DELETES` are held."""
        with self._lock:
            self._keys.update(keys)
            return len(self._keys) < HELD_DELETES

    def snapshot(self) -> set[bytes]:
        with self._lock:
            return set(self._keys)

    def written(self, deleted: Iterable[bytes], put_again: Iterable[bytes]) -> None:
        """``deleted`` are in a committed transaction; ``put_again`` are stored anew (a
        key put after its held delete is no longer deleted)."""
        with self._lock:
            self._keys.difference_update(deleted)
            self._keys.difference_update(put_again)


class Member(Protocol):
    """A spool as its environment writes it."""

    name: str
    databases: Databases
    held: HeldDeletes

    def _count_written(self, records: int, synced: bool) -> None: ...


class SharedEnvironment:
    """The environment of one path and the spools open in it; the spools' commit group."""

    def __init__(self, path: str, env: lmdb.Environment) -> None:
        self.path = path
        self.env = env
        self._pid = os.getpid()  # a forked child opens its own (LMDB forbids sharing)
        self._members: set[str] = set()
        self._opened: dict[str, Databases] = {}  # handles stay valid while env is open
        self._legacy_owner: str | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def attach(cls, name: str, path: str, *, map_size: int = MAP_SIZE
               ) -> tuple[SharedEnvironment, Databases]:
        """The environment at ``path`` for the spool ``name``, and that spool's databases."""
        key = os.path.realpath(path)
        with _registry_lock:
            shared = _registry.get(key)
            if shared is None or shared._pid != os.getpid():
                env = open_environment(path, map_size=map_size)
                # Reader slots of a killed process are freed, so that their old snapshots
                # do not keep freed pages from being reused.
                env.reader_check()
                shared = _registry[key] = cls(path, env)
            try:
                return shared, shared._join(name)
            except BaseException:
                if not shared._members:
                    shared._close()
                raise

    def _join(self, name: str) -> Databases:
        if name in self._members:
            raise ConfigError(f"kumo.define_spool: spool {name!r} is already open at "
                              f"path {self.path!r}")
        databases = self._opened.get(name) or self._open_databases(name)
        self._members.add(name)
        return databases

    def _open_databases(self, name: str) -> Databases:
        with self.env.begin() as txn:  # the main database lists the named ones
            existing = set(txn.cursor().iternext(keys=True, values=False))
        if LEGACY[0] in existing or self._legacy_owner is not None:
            owner = self._legacy_owner or name
            if owner != name or self._opened:
                raise ConfigError(
                    f"kumo.define_spool: spool {name!r} cannot share the LMDB spool at path "
                    f"{self.path!r} with spool {owner!r}: it was written by a kumocore "
                    "without shared LMDB spools and holds one spool only; give "
                    f"{name!r} a path of its own")
            self._legacy_owner = name
            names = LEGACY
        else:
            names = _names_of(name)
        databases = Databases(self.env.open_db(names[0]), self.env.open_db(names[1]))
        self._opened[name] = databases
        return databases

    def detach(self, name: str) -> None:
        """``name`` is closed; the environment closes with its last spool."""
        with _registry_lock:
            self._members.discard(name)
            if not self._members:
                self._close()

    def _close(self) -> None:
        if _registry.get(os.path.realpath(self.path)) is self:
            del _registry[os.path.realpath(self.path)]
        self.env.close()

    # ------------------------------------------------------------------ writing

    def write_together(self, steps: Sequence[Step]) -> bool:
        """The commit group's part (:class:`kumocore.spool.commit.CommitGroup`): every
        step in one transaction, with the batch statistics of each spool."""
        committed = self.write(steps)
        for spool, ops, sync in steps:
            cast(Member, spool)._count_written(len(ops), sync)  # a sync always commits
        return committed

    def write(self, steps: Sequence[Step]) -> bool:
        """On the writer thread: one transaction with the spools' held deletes and the
        steps' ops, synced as it commits. Steps of deletes only, none to be synced, are
        held for the next transaction instead (up to :data:`HELD_DELETES` per spool);
        True when everything written to these spools is in a committed transaction."""
        members = [(cast(Member, spool), ops) for spool, ops, _ in steps]
        if not any(sync for _, _, sync in steps) and all(
                value is None for _, ops in members for _, value in ops):
            below_bound = [member.held.hold(key for key, _ in ops) for member, ops in members]
            if all(below_bound):
                return False
            # Past the bound (a backlog draining with no new mail): written now.
        held = [member.held.snapshot() for member, _ in members]
        if not any(held) and not any(ops for _, ops in members):
            return True  # everything written so far is in committed, synced transactions
        with self.env.begin(write=True) as txn:  # commits (and syncs) on leaving
            for (member, ops), keys in zip(members, held, strict=True):
                _apply(txn, member.databases, keys, ops)
        for (member, ops), keys in zip(members, held, strict=True):
            member.held.written(keys, (key for key, value in ops if value is not None))
        return True


def _apply(txn: lmdb.Transaction, databases: Databases, held: Iterable[bytes],
           ops: Iterable[tuple[bytes, bytes | None]]) -> None:
    for key in held:
        _delete(txn, databases, key)
    for key, value in ops:
        if value is None:
            _delete(txn, databases, key)
        else:
            put_record(txn, databases, key, value)


def _delete(txn: lmdb.Transaction, databases: Databases, key: bytes) -> None:
    txn.delete(key, db=databases.records)
    txn.delete(key, db=databases.ids)


def put_record(txn: lmdb.Transaction, databases: Databases, key: bytes, value: bytes) -> None:
    """Store a record in the spool's layout: the value in ``records``, the key in ``ids``."""
    txn.put(key, value, db=databases.records)
    txn.put(key, b"", db=databases.ids)


def open_environment(path: str, *, sync: bool = True,
                     map_size: int = MAP_SIZE) -> lmdb.Environment:
    """The environment at ``path``, opened as the spools open it. ``sync=False`` is for a
    bulk load that syncs once at its end (``Environment.sync``); a spool's commits are
    always synced."""
    import lmdb

    return lmdb.open(path, map_size=map_size, subdir=True, sync=sync, metasync=sync,
                     readahead=False, max_dbs=_MAX_DBS, lock=True)


def databases_of(env: lmdb.Environment, spool: str) -> Databases:
    """The databases of ``spool`` in a shared environment (for a bulk load)."""
    records, ids = _names_of(spool)
    return Databases(env.open_db(records), env.open_db(ids))


_registry: dict[str, SharedEnvironment] = {}
_registry_lock = threading.Lock()
