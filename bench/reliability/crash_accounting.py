"""Accounting: every accepted message must be delivered at the sink or logged final."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common.metrics import metric_samples
from bench.common.world import FINAL_TYPES, ThreadedSink
from bench.reliability.crash_load import Ledger


class LogWatcher:
    """Incrementally reads the local logs of a server: final outcomes per recipient."""

    def __init__(self, log_dir: Path) -> None:
        from kumocore.logs.reader import Follower

        self.follower = Follower(log_dir)
        self.types: collections.Counter[str] = collections.Counter()
        self.final: dict[str, str] = {}  # recipient -> record type
        self.records = 0

    def poll(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            for _, record in self.follower.iter_new():
                self.records += 1
                kind = str(record.get("type"))
                self.types[kind] += 1
                if kind in FINAL_TYPES:
                    self.final[str(record.get("recipient", "")).lower()] = kind


@dataclass
class Accounting:
    accepted: int
    delivered: int
    bounced: int
    lost: list[str]
    duplicated: int
    duplicated_recipients: int
    unacknowledged_delivered: int
    still_spooled: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "delivered": self.delivered,
            "bounced": self.bounced,
            "lost": len(self.lost),
            "duplicated": self.duplicated,
            "duplicated_recipients": self.duplicated_recipients,
            "delivered_without_250": self.unacknowledged_delivered,
            "still_spooled": self.still_spooled,
        }


def account(ledger: Ledger, sink: ThreadedSink, logs: LogWatcher) -> Accounting:
    """Every accepted message is delivered or logged final; count what is not."""
    logs.poll()
    delivered = sink.recipients()
    accepted = {r.lower() for r in ledger.accepted}
    lost = sorted(r for r in accepted if not delivered[r] and r not in logs.final)
    return Accounting(
        accepted=len(accepted),
        delivered=sum(1 for r in accepted if delivered[r]),
        bounced=sum(1 for r in accepted if not delivered[r] and r in logs.final),
        lost=lost,
        duplicated=sum(n - 1 for n in delivered.values() if n > 1),
        duplicated_recipients=sum(1 for n in delivered.values() if n > 1),
        unacknowledged_delivered=sum(1 for r in delivered if r not in accepted),
    )


async def wait_accounted(
    ledger: Ledger, sink: ThreadedSink, logs: LogWatcher, timeout: float, stall: float = 8.0
) -> Accounting:
    """Poll until nothing accepted is outstanding, ``timeout`` passes, or nothing has moved
    for ``stall`` seconds (longer than the bench's retry interval: what is still
    outstanding then will not arrive)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int, int] = (-1, -1, -1)
    moved = time.monotonic()
    while True:
        result = account(ledger, sink, logs)
        now = time.monotonic()
        progress = (len(result.lost), sink.count(), logs.records)
        if progress != last:
            last, moved = progress, now
        if not result.lost or now > deadline or now - moved > stall:
            return result
        await asyncio.sleep(0.25)


async def wait_drained(http_port: int, timeout: float) -> None:
    """Poll the server's ``/metrics`` until it owns no message
    (``kumocore_messages_queued`` is 0) or ``timeout`` passes.

    Everything in the ledger can be accounted for while the server still holds mail
    that the ledger never saw: a message made durable whose 250 a kill cut off, retried
    after a temporary failure (the bench's retry interval is 2 s). Stopping the server
    then left it spooled, for the next start, and the end-of-run check counted it. A
    metric that is not served (yet) counts as not drained."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            counts = await asyncio.to_thread(
                metric_samples, http_port, "kumocore_messages_queued")
            if counts and sum(counts) == 0:
                return
        await asyncio.sleep(0.25)
