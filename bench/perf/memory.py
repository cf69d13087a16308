"""Resident memory per scheduled message.

The figure: start ``kumocore serve`` with the benchmark policy on an empty spool and read
its RSS (the baseline), then start it on a spool holding N deferred messages (see
:mod:`bench.perf.recovery`) and read RSS again once every message is back in the scheduler.
``(RSS_N - RSS_0) / N`` is what one scheduled message costs in RAM; its body stays on
disk (recovery does not load bodies). The peak (``VmHWM``) shows the transient cost of
the recovery scan itself.

:func:`breakdown` explains the figure in-process with :mod:`tracemalloc`: the bytes
allocated per message by ``Message.from_spool`` alone, then by ``QueueManager.insert``
(scheduler heap entry, the manager's dicts, the queue's id set).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from bench.perf.kumocore_side import KumocoreInstance, KumocoreSettings


def read_rss(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of ``pid`` in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def baseline_rss(root: Path, settings: KumocoreSettings) -> int:
    """RSS (KiB) of an idle kumocore with the benchmark policy and an empty spool."""
    instance = KumocoreInstance(root, settings)
    try:
        instance.start(ready_timeout=60)
        time.sleep(0.5)
        return read_rss(instance.pid)[0]
    finally:
        instance.stop()


@dataclass
class ScheduledMemory:
    count: int
    baseline_kib: int
    rss_kib: int
    peak_kib: int

    @property
    def bytes_per_message(self) -> float:
        return (self.rss_kib - self.baseline_kib) * 1024 / self.count if self.count else 0.0

    @property
    def peak_bytes_per_message(self) -> float:
        return (self.peak_kib - self.baseline_kib) * 1024 / self.count if self.count else 0.0


@dataclass
class Breakdown:
    count: int
    message_bytes: float  # Message.from_spool (envelope addresses, meta dict, id)
    queued_bytes: float  # + QueueManager.insert (scheduler, dicts, queue id set)


def breakdown(count: int, body: bytes) -> Breakdown:
    """Bytes allocated per message, measured with tracemalloc in this process."""
    from bench.perf.recovery import meta_template
    from kumocore.config import QueueConfig
    from kumocore.logs.dispatch import LogDispatcher
    from kumocore.logs.journal import Journal
    from kumocore.mail.ids import new_message_id
    from kumocore.mail.message import Message
    from kumocore.node.runtime import Runtime
    from kumocore.queue.manager import QueueManager
    from kumocore.spool.base import MemorySpool
    from kumocore.spool.store import MessageStore

    template = meta_template(body, time.time() + 3600)
    head, tail = template.split(b"RCPTPLACEHOLDER")
    records = [(new_message_id(), b"%s%d%s" % (head, n, tail)) for n in range(count)]
    runtime = Runtime(load_entrypoints=False)
    logs = LogDispatcher([])
    manager = QueueManager(
        hooks=runtime.hooks, resolver=runtime.resolver,
        store=MessageStore(MemorySpool("data"), MemorySpool("meta")), logs=logs,
        journal=Journal(logs, runtime.nodeid, runtime.hooks.classify_bounce),
        hostname=runtime.hostname, nodeid=runtime.nodeid)  # fmt: skip
    config = QueueConfig.from_options({})
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    messages = [Message.from_spool(key, record, b"") for key, record in records]
    after_messages = tracemalloc.get_traced_memory()[0]
    for message in messages:
        manager.insert(message, "bench@dest.example", config)
    del messages  # the manager keeps them, as the server does
    gc.collect()
    after_insert = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return Breakdown(
        count,
        (after_messages - before) / count,
        (after_insert - before) / count,
    )
