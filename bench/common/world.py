"""The test Internet of the reliability bench: DNS zones, the recording sink, :class:`World`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import resource
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common.dns_server import TestDnsServer
from bench.common.ports import free_port as free_port
from bench.common.sink import RecordingSink

REPO = Path(__file__).resolve().parents[2]

#: Domains of the test Internet: everything has its MX on the sink (127.0.0.1).
CRASH_DOMAIN = "crash.test"
RELAY_DOMAIN = "relay.test"  # the listener's ``relay_to`` domain
FOREIGN_DOMAIN = "other.test"  # must never be relayed to from an untrusted peer
FAULT_DOMAIN = "dnsfault.test"  # short TTL, used while the DNS server misbehaves
FINAL_TYPES = ("Bounce", "Expiration", "AdminBounce")
NOFILE = 65_536


def zones() -> dict[str, Any]:
    mx = {"MX": [(10, "mx.sink.test")]}
    return {
        CRASH_DOMAIN: dict(mx),
        RELAY_DOMAIN: dict(mx),
        FOREIGN_DOMAIN: dict(mx),
        FAULT_DOMAIN: {"MX": [(10, "mx.fault.sink.test")], "TTL": 1},
        "mx.fault.sink.test": {"A": ["127.0.0.1"], "TTL": 1},
        "mx.sink.test": {"A": ["127.0.0.1"]},
    }


def raise_nofile(limit: int = NOFILE) -> int:
    """Raise RLIMIT_NOFILE as far as allowed (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in ((limit, max(hard, limit)), (min(limit, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, wanted)
            return wanted[0]
        except (ValueError, OSError):
            continue
    return soft


# ---------------------------------------------------------------------------- the Internet


class ThreadedSink:
    """:class:`RecordingSink` on its own event loop thread, usable from sync and async code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="sink")
        self.sink = RecordingSink()

    def start(self) -> ThreadedSink:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sink.start(), self.loop).result(10)
        return self

    @property
    def port(self) -> int:
        return self.sink.port

    def recipients(self) -> collections.Counter[str]:
        """Deliveries per recipient (lower-cased) so far."""
        messages = list(self.sink.messages)  # a copy; the sink thread keeps appending
        return collections.Counter(m.recipient.lower() for m in messages)

    def undelivered(self, recipients: Iterable[str]) -> list[str]:
        """Those of ``recipients`` with no delivery so far, from one count of the sink's
        deliveries (asked per recipient, the count made a poll O(recipients x
        deliveries), and this thread, the sink's, starved under the GIL)."""
        got = self.recipients()
        return [r for r in recipients if not got[r.lower()]]

    def count(self) -> int:
        return len(self.sink.messages)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.sink.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()  # its selector and self-pipe sockets go with it


class World:
    """The DNS server and the sink; ``with World() as world:``."""

    def __init__(self) -> None:
        self.dns = TestDnsServer(zones())
        self.sink = ThreadedSink()

    def __enter__(self) -> World:
        self.dns.start()
        self.sink.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sink.stop()
        self.dns.stop()
