"""Messages with several recipients, delivered over SMTP: one MAIL, a RCPT per
recipient, outcomes per recipient (KumoMTA's ``deliver_message`` for a batch). Checked
on what a real SMTP server (tests.support.rcpt_sink) received, and on the log records
and the spool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore import hookimpl
from kumocore.config import QueueConfig
from kumocore.mail.message import Message
from kumocore.spool.base import MemorySpool
from kumocore.testing import Node
from tests.queue.harness import Bench, ShapingPolicy, _LogSinkPlugin
from tests.support.rcpt_sink import RcptSink

BODY = b"Subject: batch\r\n\r\nhello all\r\n"
REFUSING = {"bad@example.com": "550 5.1.1 no such user",
            "later@example.com": "451 4.3.0 try again later"}


@dataclass
class _DiskSpools:
    root: Path

    @hookimpl
    def kumo_pre_init(self, kumo: Any) -> None:
        for name in ("data", "meta"):
            kumo.define_spool(name=name, path=str(self.root / name), kind="LocalDisk")


@pytest.fixture
async def rcpt_sink() -> AsyncIterator[RcptSink]:
    async with RcptSink() as server:
        yield server


def _path(sink: RcptSink, **more: Any) -> dict[str, Any]:
    return {"smtp_port": sink.port, "enable_tls": "Disabled", "connection_limit": 1, **more}


async def inject(bench: Bench, recipients: list[str]) -> Message:
    message = Message("sender@src.test", recipients, BODY)
    assert bench.runtime.services.store is not None
    await bench.runtime.services.store.save(message)
    bench.queues.insert(message, message.recipient.domain,
                        QueueConfig.from_options(bench.policy.queue))
    return message


def spooled_recipient(bench: Bench, message_id: str) -> Any:
    """The ``recipient`` of the message's meta record in the (memory) spool."""
    assert bench.runtime.services.store is not None
    meta = bench.runtime.services.store.meta
    assert isinstance(meta, MemorySpool)
    raw = meta.items.get(message_id)
    return None if raw is None else orjson.loads(raw)["recipient"]


async def test_three_accepted_recipients_share_one_transaction_and_one_delivery_record(
    make_bench: Any, rcpt_sink: RcptSink
) -> None:
    bench: Bench = await make_bench(path=_path(rcpt_sink))
    everyone = ["a@example.com", "b@example.com", "c@example.com"]
    await inject(bench, everyone)
    (record,) = await bench.wait_for_records("Delivery", 1)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert [t.recipients for t in rcpt_sink.transactions] == [everyone]
    assert rcpt_sink.transactions[0].body == BODY
    assert rcpt_sink.verbs().count("MAIL") == 1 and rcpt_sink.verbs().count("DATA") == 1
    assert record["recipient"] == everyone
    assert record["response"]["code"] == 250
    assert [r["type"] for r in bench.log_sink.records] == ["Delivery"]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_each_recipient_gets_its_own_outcome_and_only_the_deferred_one_is_retried(
    make_bench: Any, rcpt_sink: RcptSink, pipelining: bool
) -> None:
    rcpt_sink.pipelining = pipelining
    rcpt_sink.replies.update(REFUSING)
    bench: Bench = await make_bench(path=_path(rcpt_sink), queue={"retry_interval": "2s"})
    message = await inject(
        bench, ["a@example.com", "bad@example.com", "later@example.com", "d@example.com"])
    (delivered,) = await bench.wait_for_records("Delivery", 1)
    (bounced,) = await bench.wait_for_records("Bounce", 1)
    (deferred,) = await bench.wait_for_records("TransientFailure", 1)
    assert delivered["recipient"] == ["a@example.com", "d@example.com"]
    assert bounced["recipient"] == "bad@example.com"
    assert bounced["response"]["code"] == 550 and bounced["response"]["command"] == "RCPT TO"
    assert deferred["recipient"] == "later@example.com"
    assert deferred["response"]["code"] == 451
    counters = bench.queues.outcomes.counters  # per recipient, as KumoMTA's metrics
    assert (counters["delivered"], counters["bounced"], counters["transient"]) == (2, 1, 1)
    # Saved with the recipient left before it waits for its retry.
    await bench.wait_until(
        lambda: spooled_recipient(bench, message.id) == "later@example.com", timeout=5)
    assert [t.recipients for t in rcpt_sink.transactions] == [["a@example.com", "d@example.com"]]
    rcpt_sink.replies.clear()
    retried = (await bench.wait_for_records("Delivery", 2, timeout=15))[1]
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert retried["recipient"] == "later@example.com" and retried["num_attempts"] == 1
    assert rcpt_sink.transactions[1].recipients == ["later@example.com"]
    rcpts = [line for _, line in rcpt_sink.commands if line.upper().startswith("RCPT")]
    assert rcpts[4:] == ["RCPT TO:<later@example.com>"]
    # Without PIPELINING every command waited for the reply to the one before.
    assert (rcpt_sink.sent_ahead == 0) if not pipelining else rcpt_sink.verbs().count("DATA") == 2


@pytest.mark.parametrize("pipelining", [True, False])
async def test_a_batch_with_every_rcpt_refused_sends_no_body_and_the_session_goes_on(
    make_bench: Any, rcpt_sink: RcptSink, pipelining: bool
) -> None:
    rcpt_sink.pipelining = pipelining
    rcpt_sink.replies.update({"x@example.com": "550 5.1.1 no such user",
                              "y@example.com": "550 5.1.1 no such user"})
    bench: Bench = await make_bench(path=_path(rcpt_sink, idle_timeout="3s"))
    await inject(bench, ["x@example.com", "y@example.com"])
    (bounced,) = await bench.wait_for_records("Bounce", 1)
    assert bounced["recipient"] == ["x@example.com", "y@example.com"]
    await inject(bench, ["ok@example.com"])  # while the session idles
    await bench.wait_for_records("Delivery", 1)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert rcpt_sink.connections == 1
    assert [t.recipients for t in rcpt_sink.transactions] == [["ok@example.com"]]
    verbs = rcpt_sink.verbs()
    first = verbs[: verbs.index("MAIL", 2)]  # the refused transaction, up to the next MAIL
    assert first == (["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "RSET"] if pipelining
                     else ["EHLO", "MAIL", "RCPT", "RCPT", "RSET"])


async def test_max_recipients_per_batch_splits_a_message_into_transactions_on_one_connection(
    make_bench: Any, rcpt_sink: RcptSink
) -> None:
    bench: Bench = await make_bench(path=_path(rcpt_sink, max_recipients_per_batch=2))
    everyone = [f"r{n}@example.com" for n in range(5)]
    message = await inject(bench, everyone)
    records = await bench.wait_for_records("Delivery", 3)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert [t.recipients for t in rcpt_sink.transactions] == [
        everyone[:2], everyone[2:4], everyone[4:]]
    assert {t.connection for t in rcpt_sink.transactions} == {1}
    assert sorted(map(str, (r["recipient"] for r in records))) == sorted(
        map(str, (everyone[:2], everyone[2:4], everyone[4])))
    assert {r["num_attempts"] for r in records} == {0}  # sent on at once, not retried
    assert message.num_attempts == 0


async def test_recipients_refused_as_too_many_are_sent_at_once_in_the_next_transaction(
    make_bench: Any, rcpt_sink: RcptSink
) -> None:
    rcpt_sink.max_recipients = 2
    bench: Bench = await make_bench(path=_path(rcpt_sink))
    everyone = ["a@example.com", "b@example.com", "c@example.com"]
    await inject(bench, everyone)
    await bench.wait_for_records("Delivery", 2)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert [t.recipients for t in rcpt_sink.transactions] == [everyone[:2], everyone[2:]]
    assert {t.connection for t in rcpt_sink.transactions} == {1}
    assert bench.log_sink.of_type("TransientFailure") == []  # KumoMTA logs none for it


async def test_recipients_refused_with_4_5_3_again_and_again_go_out_until_all_are_sent(
    make_bench: Any, rcpt_sink: RcptSink
) -> None:
    # KumoMTA's maildir_batch_quad: 16 recipients to a server taking 4 per transaction.
    # Those refused with 4.5.3 in one transaction were refused so in the one before too:
    # a 4.5.3 is "too many" whatever came before (only a bare 452 may mean a full box).
    rcpt_sink.max_recipients = 4
    bench: Bench = await make_bench(path=_path(rcpt_sink))
    everyone = [f"r{i}@example.com" for i in range(16)]
    await inject(bench, everyone)
    await bench.wait_for_records("Delivery", 4)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert [t.recipients for t in rcpt_sink.transactions] == [
        everyone[i:i + 4] for i in range(0, 16, 4)]
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_too_many_recipients_without_progress_waits_for_the_retry_instead_of_looping(
    make_bench: Any, rcpt_sink: RcptSink
) -> None:
    rcpt_sink.replies.update({"first@example.com": "451 4.3.0 try again later",
                              "second@example.com": "452 4.5.3 too many recipients"})
    bench: Bench = await make_bench(path=_path(rcpt_sink), queue={"retry_interval": "1h"})
    message = await inject(bench, ["first@example.com", "second@example.com"])
    records = await bench.wait_for_records("TransientFailure", 2)
    await bench.wait_until(lambda: message.num_attempts == 1)
    assert sorted(str(r["recipient"]) for r in records) == [
        "first@example.com", "second@example.com"]
    assert rcpt_sink.verbs().count("MAIL") == 1
    assert [str(r) for r in message.recipients] == ["first@example.com", "second@example.com"]
    assert bench.spooled() == 1


async def test_after_a_partial_delivery_a_restart_recovers_only_the_recipients_left(
    dns: TestDnsServer, sink: RecordingSink, rcpt_sink: RcptSink, tmp_path: Path
) -> None:
    rcpt_sink.replies.update(REFUSING)

    def on_disk() -> Bench:  # a node over the same spool on disk each time
        policy = ShapingPolicy(sink_port=rcpt_sink.port, path=_path(rcpt_sink),
                               queue={"retry_interval": "3s"})
        bench = Bench(policy, dns, sink)
        bench.node = Node(plugins=[_LogSinkPlugin(bench.log_sink), policy,
                                   _DiskSpools(tmp_path)],
                          dns=dns, sink=sink, entrypoints=False, listen=False)
        return bench

    first = await on_disk().start()
    try:
        message = await inject(first, ["a@example.com", "later@example.com",
                                       "bad@example.com"])
        await first.wait_for_records("TransientFailure", 1)
        await first.wait_until(lambda: message.id in first.queues.queued
                               and first.queues.queued[message.id].queue is not None
                               and message.num_attempts == 1)
        store = first.runtime.services.store
        assert store is not None
        # The attempt is counted just before the meta record is saved: wait for the save.
        for _ in range(200):
            meta = await store.meta.get(message.id)
            assert meta is not None
            if orjson.loads(meta)["recipient"] == "later@example.com":
                break
            await asyncio.sleep(0.02)
        assert orjson.loads(meta)["recipient"] == "later@example.com"
    finally:
        await first.stop()
    rcpt_sink.replies.clear()
    second = await on_disk().start()
    try:
        await second.wait_until(lambda: message.id in second.queues.queued, timeout=10)
        recovered = second.queues.queued[message.id].message
        assert [str(r) for r in recovered.recipients] == ["later@example.com"]
        (record,) = await second.wait_for_records("Delivery", 1, timeout=15)
        assert record["recipient"] == "later@example.com"
    finally:
        await second.stop()
    assert [t.recipients for t in rcpt_sink.transactions] == [
        ["a@example.com"], ["later@example.com"]]


@pytest.mark.parametrize("next_host", [True, False])
async def test_a_421_defers_every_recipient_and_may_go_to_the_next_host_uncounted(
    make_bench: Any, rcpt_sink: RcptSink, next_host: bool
) -> None:
    rcpt_sink.replies["b@example.com"] = "421 4.3.2 shutting down"
    bench: Bench = await make_bench(
        path=_path(rcpt_sink, try_next_host_on_transport_error=next_host),
        queue={"retry_interval": "1h"})
    message = await inject(bench, ["a@example.com", "b@example.com"])
    await bench.wait_until(lambda: message.num_attempts == 1)
    records = await bench.wait_for_records("TransientFailure", 2 if next_host else 1)
    # Both MX hosts of example.com (one address each) with the option, one without.
    assert rcpt_sink.connections == len(records) == (2 if next_host else 1)
    assert {str(r["recipient"]) for r in records} == {str(["a@example.com", "b@example.com"])}
    assert {r["response"]["code"] for r in records} == {421}
    assert {r["num_attempts"] for r in records} == {0}
    assert rcpt_sink.transactions == [] and bench.spooled() == 1
