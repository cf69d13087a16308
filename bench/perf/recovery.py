"""Many spooled messages: writing them, and how long kumocore takes to recover them.

:func:`populate_spool` writes N messages straight into the ``data`` and ``meta`` spools
of a kumocore var dir, in the exact on-disk format kumocore writes (raw-mode RocksDB
opened with the spool plugin's own ``build_options``, or for ``LMDB`` spools an LMDB
environment as that plugin opens it, shared by both when both are LMDB; meta records are
``Message.meta_bytes()`` of a message with the connection meta an SMTP reception sets, one
distinct recipient each; data records are the test message). Every message is due
``due_in`` seconds from now, so after recovery they all sit in the scheduler: the state of
a node that was restarted with a backlog of deferred mail. (Injecting a million messages
through SMTP first would take far longer than the measurement and measures something else.)

:func:`measure_recovery` starts ``kumocore serve`` on that var dir and reports the time
from process start until the ESMTP listener accepts connections (kumocore starts its
listeners only after every spooled message is back in a queue) and the time the server
itself logs for the recovery scan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.perf.kumocore_side import KumocoreInstance, KumocoreSettings
from bench.perf.load import DEST_DOMAIN, SENDER

_PLACEHOLDER = "RCPTPLACEHOLDER"


@dataclass
class PopulateResult:
    count: int
    seconds: float
    meta_bytes: int
    data_bytes: int


def _open(path: Path) -> object:
    import rocksdict
    from kumocore_rocksdb_spool.params import build_options

    path.mkdir(parents=True, exist_ok=True)
    return rocksdict.Rdict(str(path), build_options(rocksdict, flush=False, params={}))


class _LmdbEnvironment:
    """One LMDB environment of the spool layout, shared by the spools written into it."""

    def __init__(self, path: Path) -> None:
        from kumocore_lmdb_spool.environment import open_environment

        path.mkdir(parents=True, exist_ok=True)
        self.env = open_environment(str(path), sync=False)
        self.spools = 0


class _LmdbData:
    """An LMDB spool written the way :func:`populate_spool` writes RocksDB: a batch of
    puts per call (one transaction, synced only by ``flush``), in the plugin's own layout
    (``databases_of``, ``put_record``)."""

    def __init__(self, environment: _LmdbEnvironment, name: str) -> None:
        from kumocore_lmdb_spool.environment import databases_of

        self.environment = environment
        self.databases = databases_of(environment.env, name)
        environment.spools += 1

    def write(self, batch: list[tuple[bytes, bytes]], _options: object) -> None:
        from kumocore_lmdb_spool.environment import put_record

        with self.environment.env.begin(write=True) as txn:
            for key, value in batch:
                put_record(txn, self.databases, key, value)

    def flush(self, _wait: bool) -> None:
        self.environment.env.sync(True)

    def close(self) -> None:
        self.environment.spools -= 1
        if not self.environment.spools:
            self.environment.env.close()


def meta_template(body: bytes, due: float) -> bytes:
    """A meta record as kumocore writes it, with a placeholder for the recipient."""
    from kumocore.mail.message import Message

    message = Message(
        SENDER,
        f"{_PLACEHOLDER}@{DEST_DOMAIN}",
        body,
        meta={
            "reception_protocol": "ESMTP",
            "received_via": "127.0.0.1:2025",
            "received_from": "127.0.0.1:48512",
            "ehlo_domain": "injector.bench.example",
            "tenant": "bench",
        },
        due=due,
    )
    record = message.meta_bytes()
    if record.count(_PLACEHOLDER.encode()) != 1:
        raise RuntimeError("unexpected meta record layout: the recipient must appear once")
    return record


def populate_spool(
    var: Path, count: int, body: bytes, *, due_in: float = 3600.0, batch: int = 5000,
    workers: int = 1, data_kind: str = "RocksDB", meta_kind: str = "RocksDB",
) -> PopulateResult:
    """Write ``count`` messages into ``var/spool/{data,meta}`` (unsynced, then flushed).

    With ``workers`` > 1, each message goes to the spool shard of the worker that
    ``serve --workers N`` would move it to (:func:`kumocore.spool.shards.target_of`), so
    the workers start on their own shards and recover them in parallel. ``meta_kind``
    ``LMDB`` beside ``LMDB`` data puts the envelopes in the bodies' environment, as the
    benchmark policy defines them.
    """
    import rocksdict

    from kumocore.mail.ids import new_message_id
    from kumocore.spool.shards import owned_path, target_of

    started = time.perf_counter()
    template = meta_template(body, time.time() + due_in)
    head, tail = template.split(_PLACEHOLDER.encode())
    body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    spool = var / "spool"
    shared = data_kind == meta_kind == "LMDB"

    def new_batch(kind: str) -> Any:
        return _LmdbBatch() if kind == "LMDB" else rocksdict.WriteBatch(raw_mode=True)

    def open_shard(k: int) -> tuple[Any, Any]:
        data_path = Path(owned_path(str(spool / "data"), k, workers))
        meta_path = Path(owned_path(str(spool / "meta"), k, workers))
        if data_kind != "LMDB":
            return _open(data_path), _open(meta_path)
        environment = _LmdbEnvironment(data_path)
        if shared:
            return _LmdbData(environment, "data"), _LmdbData(environment, "meta")
        return _LmdbData(environment, "data"), _open(meta_path)

    shards = [open_shard(k) for k in range(workers)]
    options = rocksdict.WriteOptions()
    options.sync = False
    meta_bytes = data_bytes = 0
    try:
        for start in range(0, count, batch):
            batches = [(new_batch(data_kind), new_batch("LMDB" if shared else "RocksDB"))
                       for _ in shards]  # fmt: skip
            for n in range(start, min(start + batch, count)):
                message_id = new_message_id()
                key = message_id.encode()
                record = b"%s%d%s" % (head, n, tail)
                data_batch, meta_batch = batches[target_of(message_id, workers)]
                data_batch.put(key, body)
                meta_batch.put(key, record)
                meta_bytes += len(record)
                data_bytes += len(body)
            for (data_db, meta_db), (data_batch, meta_batch) in zip(shards, batches, strict=True):
                data_db.write(data_batch, options)  # type: ignore[attr-defined]
                meta_db.write(meta_batch, options)  # type: ignore[attr-defined]
        for pair in shards:
            for db in pair:
                db.flush(True)  # type: ignore[attr-defined]
    finally:
        for pair in shards:
            for db in pair:
                db.close()  # type: ignore[attr-defined]
    return PopulateResult(count, time.perf_counter() - started, meta_bytes, data_bytes)


class _LmdbBatch(list[tuple[bytes, bytes]]):
    """The puts of one :class:`_LmdbData` write, collected as a ``WriteBatch`` would."""

    def put(self, key: bytes, value: bytes) -> None:
        self.append((key, value))


@dataclass
class RecoveryResult:
    count: int
    #: process start → ESMTP listener accepting (import, policy, spool open, recovery)
    seconds_to_ready: float
    #: the server's own measure of the recovery scan (None if it did not log it)
    scan_seconds: float | None
    recovered_logged: int | None
    rss_kib: int
    peak_rss_kib: int
    errors: list[str]

    @property
    def messages_per_second(self) -> float:
        seconds = self.scan_seconds or self.seconds_to_ready
        return self.count / seconds if seconds > 0 else 0.0


def measure_recovery(
    root: Path, var: Path, settings: KumocoreSettings, count: int, *, ready_timeout: float
) -> RecoveryResult:
    """Start kumocore on a populated ``var`` (``root/var``) and time the recovery."""
    from bench.perf.memory import read_rss

    instance = KumocoreInstance(root, settings)
    if instance.var != var:
        raise ValueError(f"the spool must be populated in {instance.var}, not {var}")
    try:
        instance.start(ready_timeout=ready_timeout)
        ready = instance.ready_at - instance.started_at
        time.sleep(0.5)  # let the loop settle (first log segment, timers)
        rss, peak = read_rss(instance.pid)
        logged = instance.recovery_logged()
        return RecoveryResult(
            count=count,
            seconds_to_ready=ready,
            scan_seconds=logged[1] if logged else None,
            recovered_logged=logged[0] if logged else None,
            rss_kib=rss,
            peak_rss_kib=peak,
            errors=instance.errors_logged()[:5],
        )
    finally:
        instance.stop()
