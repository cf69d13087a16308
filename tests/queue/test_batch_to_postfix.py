"""A batch delivered to a foreign MTA: a private Postfix (Debian's, as the benchmark runs
it) takes kumocore's multi-RCPT transaction and relays it on to a recording server; with
``smtpd_recipient_limit`` it answers the third RCPT with its own ``452 4.5.3``, which
kumocore sends again at once in a second transaction, as KumoMTA does."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.ports import free_port
from bench.perf.postfix import PostfixInstance
from tests.queue.harness import Bench
from tests.queue.test_batch_delivery import inject
from tests.support.rcpt_sink import RcptSink

pytestmark = pytest.mark.slow
EVERYONE = ["a@example.com", "b@example.com", "c@example.com"]


class _LimitedPostfix(PostfixInstance):
    def __init__(self, *args: Any, recipient_limit: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.recipient_limit = recipient_limit

    def settings(self) -> dict[str, str]:
        return super().settings() | {"smtpd_recipient_limit": str(self.recipient_limit)}


@pytest.fixture
async def relay_target() -> AsyncIterator[RcptSink]:
    async with RcptSink() as server:
        yield server


@pytest.fixture
def postfix(request: pytest.FixtureRequest, relay_target: RcptSink) -> Iterator[PostfixInstance]:
    limit = getattr(request, "param", 1000)
    # Postfix's own user must reach its queue: not under pytest's root-only tmp_path.
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="kc-postfix-") as root:
        os.chmod(root, 0o755)
        instance = _LimitedPostfix(Path(root) / "postfix", smtpd_port=free_port(),
                                   relay_port=relay_target.port, recipient_limit=limit)
        with instance:
            yield instance


async def _relayed(target: RcptSink, count: int) -> list[list[str]]:
    for _ in range(600):
        got = [t.recipients for t in target.transactions]
        if sum(len(r) for r in got) >= count:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"Postfix relayed {target.transactions!r}")


async def test_postfix_takes_a_batch_in_one_transaction_and_relays_it_whole(
    make_bench: Any, postfix: PostfixInstance, relay_target: RcptSink
) -> None:
    bench: Bench = await make_bench(path={"smtp_port": postfix.smtpd_port,
                                          "enable_tls": "Disabled"})  # fmt: skip
    await inject(bench, EVERYONE)
    (record,) = await bench.wait_for_records("Delivery", 1)
    assert record["recipient"] == EVERYONE
    assert record["response"]["code"] == 250
    assert await _relayed(relay_target, 3) == [EVERYONE]


@pytest.mark.parametrize("postfix", [2], indirect=True)
async def test_postfixs_own_too_many_recipients_sends_the_rest_at_once(
    make_bench: Any, postfix: PostfixInstance, relay_target: RcptSink
) -> None:
    bench: Bench = await make_bench(path={"smtp_port": postfix.smtpd_port,
                                          "enable_tls": "Disabled"})  # fmt: skip
    await inject(bench, EVERYONE)
    first, second = await bench.wait_for_records("Delivery", 2)
    assert [first["recipient"], second["recipient"]] == [EVERYONE[:2], EVERYONE[2]]
    assert bench.log_sink.of_type("TransientFailure") == []
    relayed = await _relayed(relay_target, 3)
    assert sorted(r for t in relayed for r in t) == EVERYONE
