"""A ``552`` to ``RCPT TO`` without an enhanced code is taken as temporary (RFC 5321
4.5.3.1.10: old servers meant "too many recipients" by it; KumoMTA since 2025.12.02); a
``552`` with one (``5.2.2`` mailbox full) still bounces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kumocore.mail.response import Response
from kumocore.queue.batch_groups import is_retried
from tests.queue.test_batch_delivery import _path, inject
from tests.support.rcpt_sink import RcptSink

REFUSING = {"old@example.com": "552 too many recipients",
            "full@example.com": "552 5.2.2 mailbox full"}


@pytest.fixture
async def rcpt_sink() -> AsyncIterator[RcptSink]:
    async with RcptSink(replies=REFUSING) as server:
        yield server


async def test_a_bare_552_to_rcpt_is_retried_and_a_552_5_2_2_bounces(
    make_bench: Any, rcpt_sink: RcptSink
) -> None:
    bench = await make_bench(path=_path(rcpt_sink))
    await inject(bench, ["old@example.com"])
    await inject(bench, ["full@example.com"])
    (transient,) = await bench.wait_for_records("TransientFailure", 1)
    (bounce,) = await bench.wait_for_records("Bounce", 1)
    assert transient["recipient"] == "old@example.com"
    assert bounce["recipient"] == "full@example.com"


def test_only_rcpt_replies_without_an_enhanced_code_are_retried() -> None:
    assert is_retried(Response.parse(552, "too many recipients", command="RCPT TO"))
    assert not is_retried(Response.parse(552, "5.2.2 mailbox full", command="RCPT TO"))
    assert not is_retried(Response.parse(552, "message too big", command="."))
    assert is_retried(Response.parse(452, "4.5.3 too many recipients", command="RCPT TO"))
