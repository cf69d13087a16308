"""A batch against MX hosts that fail it half way: what the spool holds while the
message is in flight decides what a crash (kill -9) sends again on restart.

The rule checked: once a recipient's Delivery or Bounce is recorded, the meta record
no longer names it before the message goes out on another connection, so a restart
neither delivers it twice nor bounces it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore.logs.record import LogRecord
from kumocore.queue.admin import parse_rule
from kumocore.testing.logs import RecordingLogSink
from tests.queue.harness import Bench, ShapingPolicy
from tests.queue.test_batch_delivery import _path, inject, spooled_recipient
from tests.support.rcpt_sink import RcptSink


class _Watched(RcptSink):
    """An RcptSink that notes, as each connection arrives, what ``watch`` returns."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.watch: Any = None
        self.seen: list[Any] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.watch is not None:
            self.seen.append(self.watch())
        await super()._serve(reader, writer)


@pytest.fixture
async def watched() -> AsyncIterator[_Watched]:
    async with _Watched() as server:
        yield server


async def test_a_batch_sent_to_the_next_host_is_spooled_without_the_recipients_settled(
    make_bench: Any, watched: _Watched
) -> None:
    # b is refused for good at RCPT (a Bounce); a is accepted, then the dot gets a 421:
    # a goes to the next MX host at once (try_next_host_on_transport_error).
    watched.replies["b@example.com"] = "550 5.1.1 no such user"
    watched.dot_reply = "421 4.3.2 shutting down"
    bench: Bench = await make_bench(
        path=_path(watched, try_next_host_on_transport_error=True), queue={"retry_interval": "1h"}
    )
    message = await inject(bench, ["a@example.com", "b@example.com"])
    watched.watch = lambda: spooled_recipient(bench, message.id)
    (bounce,) = await bench.wait_for_records("Bounce", 1)
    assert bounce["recipient"] == "b@example.com"
    await bench.wait_until(lambda: message.num_attempts == 1)
    # Both MX hosts of example.com; when the second was connected to, b's Bounce was
    # written and the spool must no longer list b (a crash there would bounce it again).
    assert watched.connections == 2
    assert watched.seen == [["a@example.com", "b@example.com"], "a@example.com"]
    assert len(bench.log_sink.of_type("Bounce")) == 1
    assert spooled_recipient(bench, message.id) == "a@example.com"


async def test_an_admin_bounce_of_a_partly_delivered_batch_names_only_the_recipients_left(
    make_bench: Any, watched: _Watched
) -> None:
    watched.replies["later@example.com"] = "451 4.3.0 try again later"
    watched.replies["later2@example.com"] = "451 4.3.0 try again later"
    bench: Bench = await make_bench(path=_path(watched), queue={"retry_interval": "1h"})
    message = await inject(bench, ["a@example.com", "later@example.com", "later2@example.com"])
    await bench.wait_until(lambda: message.num_attempts == 1)
    (delivery,) = await bench.wait_for_records("Delivery", 1)
    assert delivery["recipient"] == "a@example.com"
    bench.queues.apply_bounce_rule(parse_rule({"domain": "example.com", "reason": "purge"}))
    (bounce,) = await bench.wait_for_records("AdminBounce", 1)
    # One record for the message, naming the recipients still on it (not a, delivered).
    assert bounce["id"] == message.id
    assert bounce["recipient"] == ["later@example.com", "later2@example.com"]
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert bench.queues.outcomes.counters["admin_bounced"] == 1


async def test_a_duplicate_recipient_refused_as_too_many_does_not_hide_its_delivered_twin(
    make_bench: Any, watched: _Watched
) -> None:
    # BatchByDomain keeps a repeated RCPT (as KumoMTA); the MX takes two per transaction,
    # so the second a is refused as too many and goes in the next transaction.
    watched.max_recipients = 2
    bench: Bench = await make_bench(path=_path(watched), queue={"retry_interval": "1h"})
    await inject(bench, ["a@example.com", "b@example.com", "a@example.com"])
    await bench.wait_until(lambda: bench.spooled() == 0)
    delivered = [t.recipients for t in watched.transactions]
    assert delivered == [["a@example.com", "b@example.com"], ["a@example.com"]]
    records = await bench.wait_for_records("Delivery", 2)
    # Each recipient the MX accepted has its Delivery: the first a too.
    assert [r["recipient"] for r in records] == [
        ["a@example.com", "b@example.com"],
        "a@example.com",
    ]


class _HeldLogSink(RecordingLogSink):
    """Writes nothing until ``release`` is set (a slow or full log disk)."""

    name = "held"

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.asked = asyncio.Event()

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        self.asked.set()
        await self.release.wait()
        await super().write_batch(records)


async def test_the_spool_forgets_a_delivered_recipient_only_after_its_record_is_written(
    dns: TestDnsServer, sink: RecordingSink, watched: _Watched
) -> None:
    rcpt_sink = watched
    # Saving the shorter list first, a crash before the log write would leave "a"
    # delivered with no Delivery record anywhere.
    rcpt_sink.replies.update({"b@example.com": "451 4.3.0 try again later"})
    logs = _HeldLogSink()
    bench = await Bench(ShapingPolicy(sink_port=sink.port, path=_path(rcpt_sink),
                                      queue={"retry_interval": "1h"}),
                        dns, sink, log_sink=logs).start()  # fmt: skip
    try:
        message = await inject(bench, ["a@example.com", "b@example.com"])
        await asyncio.wait_for(logs.asked.wait(), 10)
        await asyncio.sleep(0.3)  # time enough for a save that does not wait
        assert spooled_recipient(bench, message.id) == ["a@example.com", "b@example.com"]
        logs.release.set()
        await bench.wait_until(
            lambda: spooled_recipient(bench, message.id) == "b@example.com")
    finally:
        logs.release.set()
        await bench.stop()
