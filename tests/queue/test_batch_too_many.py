"""When a batch's extra transactions go out, and what a bare ``452`` / ``552`` to
``RCPT TO`` means (KumoMTA's ``IsTooManyRecipients``): the bounce classifier settles
it, and every further transaction of a batch is one of the session's deliveries, so
``max_deliveries_per_connection`` applies between them. Checked on what a real SMTP
server (tests.support.rcpt_sink) received, and on the log records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore import hookimpl
from kumocore.mail.response import Response
from kumocore.queue.batch_groups import (
    BatchMemory,
    TooMany,
    classify_too_many,
    too_many_recipients,
)
from tests.queue.harness import Bench, ShapingPolicy
from tests.queue.test_batch_delivery import _path, inject
from tests.support.rcpt_sink import RcptSink

OLD_TOO_MANY = "552 too many recipients"  # an old server's reply (RFC 5321 4.5.3.1.10)


@dataclass
class _ClassifyingPolicy(ShapingPolicy):
    """The bench's policy with a bounce classifier that files ``OLD_TOO_MANY`` under
    ``bounce_class``."""

    bounce_class: str = "Uncategorized"

    @hookimpl
    def kumo_classify_bounce(self, response: Response) -> str | None:
        return self.bounce_class if "too many" in response.content else None


@pytest.fixture
async def rcpt_sink() -> AsyncIterator[RcptSink]:
    async with RcptSink() as server:
        yield server


@pytest.fixture
async def classifying_bench(
    dns: TestDnsServer, sink: RecordingSink
) -> AsyncIterator[Any]:
    benches: list[Bench] = []

    async def make(bounce_class: str, **policy: Any) -> Bench:
        bench = await Bench(_ClassifyingPolicy(sink_port=sink.port, bounce_class=bounce_class,
                                               **policy), dns, sink).start()
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        await bench.stop()


async def test_a_bare_552_classified_too_many_recipients_sends_the_rest_at_once(
    classifying_bench: Any, rcpt_sink: RcptSink
) -> None:
    rcpt_sink.max_recipients, rcpt_sink.too_many_reply = 2, OLD_TOO_MANY
    bench = await classifying_bench("TooManyRecipients", path=_path(rcpt_sink))
    everyone = ["a@example.com", "b@example.com", "c@example.com"]
    await inject(bench, everyone)
    await bench.wait_for_records("Delivery", 2)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert [t.recipients for t in rcpt_sink.transactions] == [everyone[:2], everyone[2:]]
    assert bench.log_sink.of_type("TransientFailure") == []
    assert bench.log_sink.of_type("Bounce") == []


async def test_a_bare_552_the_classifier_files_elsewhere_bounces_that_recipient(
    classifying_bench: Any, rcpt_sink: RcptSink
) -> None:
    # QuotaIssues: the old server meant a full mailbox, not "too many".
    rcpt_sink.max_recipients, rcpt_sink.too_many_reply = 2, OLD_TOO_MANY
    bench = await classifying_bench("QuotaIssues", path=_path(rcpt_sink))
    await inject(bench, ["a@example.com", "b@example.com", "c@example.com"])
    (bounce,) = await bench.wait_for_records("Bounce", 1)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert bounce["recipient"] == "c@example.com"
    assert bounce["bounce_classification"] == "QuotaIssues"
    assert [t.recipients for t in rcpt_sink.transactions] == [
        ["a@example.com", "b@example.com"]]


async def test_a_bare_552_to_a_lone_recipient_bounces_when_classified_and_waits_when_not(
    classifying_bench: Any, rcpt_sink: RcptSink
) -> None:
    rcpt_sink.replies.update({"full@example.com": OLD_TOO_MANY})
    filed = await classifying_bench("QuotaIssues", path=_path(rcpt_sink))
    await inject(filed, ["full@example.com"])
    (bounce,) = await filed.wait_for_records("Bounce", 1)
    assert bounce["response"]["code"] == 552
    # A class of the policy's own says nothing KumoMTA knows: still "maybe", retried.
    own = await classifying_bench("OldServerQuirk", path=_path(rcpt_sink),
                                  queue={"retry_interval": "1h"})
    await inject(own, ["full@example.com"])
    (transient,) = await own.wait_for_records("TransientFailure", 1)
    assert transient["bounce_classification"] == "OldServerQuirk"


async def test_each_further_transaction_of_a_batch_counts_towards_max_deliveries(
    make_bench: Any, rcpt_sink: RcptSink
) -> None:
    bench: Bench = await make_bench(path=_path(
        rcpt_sink, max_recipients_per_batch=1, max_deliveries_per_connection=2))
    everyone = ["a@example.com", "b@example.com", "c@example.com"]
    await inject(bench, everyone)
    await bench.wait_for_records("Delivery", 3)
    assert [(t.connection, t.recipients) for t in rcpt_sink.transactions] == [
        (1, everyone[:1]), (1, everyone[1:2]), (2, everyone[2:])]


async def test_a_batch_refused_everywhere_with_one_delivery_per_connection_waits_for_its_retry(
    make_bench: Any, rcpt_sink: RcptSink
) -> None:
    # Each recipient tried once, on a connection of its own; then the retry: never a
    # reconnect loop, though every session is new (the path remembers what it tried).
    everyone = ["a@example.com", "b@example.com", "c@example.com"]
    rcpt_sink.replies.update({name: "451 4.3.0 try again later" for name in everyone})
    bench: Bench = await make_bench(
        path=_path(rcpt_sink, max_recipients_per_batch=1, max_deliveries_per_connection=1),
        queue={"retry_interval": "1h"})
    message = await inject(bench, everyone)
    await bench.wait_until(lambda: message.num_attempts == 1)
    assert rcpt_sink.verbs().count("MAIL") == 3 and rcpt_sink.connections == 3
    records = bench.log_sink.of_type("TransientFailure")
    assert sorted(str(r["recipient"]) for r in records) == everyone


def test_only_rcpt_replies_can_say_too_many_recipients() -> None:
    def verdict(code: int, text: str, command: str = "RCPT TO") -> TooMany:
        return too_many_recipients(Response.parse(code, text, command=command))

    assert verdict(452, "too many recipients") is TooMany.MAYBE
    assert verdict(552, "too many recipients") is TooMany.MAYBE
    assert verdict(451, "4.5.3 too many") is TooMany.YES  # IANA's 451 4.5.3
    assert verdict(552, "5.2.2 mailbox full") is TooMany.NO
    assert verdict(452, "too many recipients", command=".") is TooMany.NO


async def test_the_classifier_settles_only_a_maybe() -> None:
    asked: list[Response] = []

    async def classify(response: Response) -> str:
        asked.append(response)
        return "TooManyRecipients"

    bare = Response.parse(452, "try later", command="RCPT TO")
    enhanced = Response.parse(452, "4.5.3 too many", command="RCPT TO")
    assert await classify_too_many(bare, classify) is TooMany.YES
    assert await classify_too_many(enhanced, classify) is TooMany.YES
    assert asked == [bare]


def test_batch_memory_keeps_last_per_session_and_forgets_the_oldest_past_its_limit() -> None:
    memory = BatchMemory()
    memory.remember("m1", "s1", ["a", "b"], ["a"])
    assert memory.last("m1", "s1") == {"a", "b"} and memory.last("m1", "s2") == frozenset()
    memory.remember("m1", "s2", ["b"], ["b"])
    assert memory.tried("m1") == {"a", "b"}
    for n in range(BatchMemory.LIMIT):
        memory.remember(f"x{n}", "s1", ["a"], ["a"])
    assert memory.tried("m1") == set()  # the oldest went first
    memory.forget("x5")
    assert memory.tried("x5") == set() and memory.tried("x6") == {"a"}
