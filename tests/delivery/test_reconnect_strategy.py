"""``reconnect_strategy`` and ``try_next_host_on_transport_error`` (KumoMTA's
smtp_dispatcher): which host a session uses after the MX cut a transaction off, which
message goes over it, and what was logged. The MX set of ``plan.example`` is a (10),
b (20), c (30); host a refuses every session with a 554 greeting, so each session's
first connection is to b."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kumocore.config import EgressPathConfig
from tests.delivery.conftest import ADDRESSES
from tests.queue.harness import Bench
from tests.support.mx_farm import Host, MxFarm


def _farm(b_script: list[str], *, a_refuses: bool = True) -> MxFarm:
    banner = "554 5.3.2 not now" if a_refuses else "220 mx.farm.test ESMTP"
    return MxFarm(
        {
            "a": Host(ADDRESSES["a"], banner=banner),
            "b": Host(ADDRESSES["b"], script=b_script),
            "c": Host(ADDRESSES["c"]),
        }
    )


def _host(record: dict[str, Any]) -> str:
    return str(record["peer_address"]["name"]).split(".")[0]


async def _send_two(bench: Bench) -> tuple[Any, Any]:
    first = await bench.inject("one@plan.example")
    second = await bench.inject("two@plan.example")
    return first, second


def test_the_three_options_load_without_allow_unsupported() -> None:
    config = EgressPathConfig.from_options(
        {
            "use_lmtp": True,
            "reconnect_strategy": "TerminateSession",
            "try_next_host_on_transport_error": True,
        }
    )
    assert config.use_lmtp and config.try_next_host_on_transport_error
    assert config.reconnect_strategy == "TerminateSession"


@pytest.mark.parametrize(
    ("strategy", "order"),
    [
        # the next address of the plan
        ("ConnectNextHost", ["a", "b", "c"]),
        # the same address again, in the same session (a is not asked again)
        ("ReconnectSameHost", ["a", "b", "b"]),
        # the session ends; the next one starts over at the top of a fresh plan
        ("TerminateSession", ["a", "b", "a", "b"]),
    ],
)
async def test_after_a_connection_dropped_mid_transaction_the_strategy_picks_the_next_host(
    farm_bench: Any, strategy: str, order: list[str]
) -> None:
    async with _farm(["drop"]) as farm:
        bench = await farm_bench(farm.port, path={"reconnect_strategy": strategy})
        first, second = await _send_two(bench)
        (delivery,) = await bench.wait_for_records("Delivery", 1)
        assert farm.order() == order
        # The cut-off message failed transiently on b, its attempt counted; the next
        # message went over the next connection.
        (failure,) = bench.log_sink.of_type("TransientFailure")
        assert failure["recipient"] == "one@plan.example" and _host(failure) == "b"
        assert failure["response"]["code"] == 400 and failure["response"]["command"] == "."
        assert "connection lost" in failure["response"]["content"]
        assert failure["num_attempts"] == 0 and first.num_attempts == 1
        assert delivery["recipient"] == "two@plan.example"
        assert _host(delivery) == order[-1] and second.num_attempts == 0


async def test_connect_next_host_ends_the_session_when_the_plan_is_used_up(
    farm_bench: Any,
) -> None:
    # b then c drop a transaction each: the plan (a, b, c) is used up, so the third
    # message waits for a new session, which starts again at a.
    farm = _farm(["drop"])
    farm.hosts["c"].script = ["drop"]
    async with farm:
        bench = await farm_bench(farm.port)
        for name in ("one", "two", "three"):
            await bench.inject(f"{name}@plan.example")
        (delivery,) = await bench.wait_for_records("Delivery", 1)
        assert farm.order() == ["a", "b", "c", "a", "b"]
        assert delivery["recipient"] == "three@plan.example" and _host(delivery) == "b"
        failed = [(r["recipient"], _host(r)) for r in bench.log_sink.of_type("TransientFailure")]
        assert failed == [("one@plan.example", "b"), ("two@plan.example", "c")]


async def test_try_next_host_sends_the_message_again_at_once_after_a_421(
    farm_bench: Any,
) -> None:
    async with _farm(["421"]) as farm:
        bench = await farm_bench(farm.port, path={"try_next_host_on_transport_error": True})
        message = await bench.inject("one@plan.example")
        (delivery,) = await bench.wait_for_records("Delivery", 1)
        (failure,) = bench.log_sink.of_type("TransientFailure")
        # Logged first, on b, not counted; then the same message over c.
        assert bench.log_sink.records.index(failure) < bench.log_sink.records.index(delivery)
        assert _host(failure) == "b" and failure["response"]["code"] == 421
        assert failure["num_attempts"] == 0
        assert delivery["recipient"] == "one@plan.example" and _host(delivery) == "c"
        assert delivery["num_attempts"] == 0 and message.num_attempts == 0
        assert farm.order() == ["a", "b", "c"]


async def test_without_try_next_host_a_421_defers_the_message_to_its_retry(
    farm_bench: Any,
) -> None:
    async with _farm(["421"]) as farm:
        bench = await farm_bench(farm.port)
        message = await bench.inject("one@plan.example")
        (failure,) = await bench.wait_for_records("TransientFailure", 1)
        await bench.wait_until(lambda: message.num_attempts == 1)
        assert failure["response"]["code"] == 421 and _host(failure) == "b"
        assert bench.log_sink.of_type("Delivery") == []


async def test_try_next_host_leaves_a_connection_lost_at_the_dot_to_the_retry(
    farm_bench: Any,
) -> None:
    # As KumoMTA decides: a failure in reply to the dot (or MAIL, RCPT, DATA) is about
    # the message, even when the connection broke; only a 421 or a failure outside the
    # transaction (RSET) goes to the next host at once.
    async with _farm(["drop"]) as farm:
        bench = await farm_bench(farm.port, path={"try_next_host_on_transport_error": True})
        message = await bench.inject("one@plan.example")
        (failure,) = await bench.wait_for_records("TransientFailure", 1)
        await bench.wait_until(lambda: message.num_attempts == 1)
        assert failure["response"]["command"] == "."
        assert bench.log_sink.of_type("Delivery") == []


async def test_try_next_host_with_reconnect_same_host_retries_on_the_same_host(
    farm_bench: Any,
) -> None:
    async with _farm([], a_refuses=False) as farm:
        farm.hosts["a"].script = ["421"]
        bench = await farm_bench(
            farm.port,
            path={
                "try_next_host_on_transport_error": True,
                "reconnect_strategy": "ReconnectSameHost",
            },
        )
        message = await bench.inject("one@plan.example")
        (delivery,) = await bench.wait_for_records("Delivery", 1)
        (failure,) = bench.log_sink.of_type("TransientFailure")
        assert _host(failure) == "a" and _host(delivery) == "a"
        assert message.num_attempts == 0 and farm.order() == ["a", "a"]


async def test_try_next_host_with_terminate_session_is_an_ordinary_retry(
    farm_bench: Any,
) -> None:
    # TerminateSession leaves the session no next connection: the message waits for
    # its retry, the attempt counted, and no other host is asked.
    async with _farm([], a_refuses=False) as farm:
        farm.hosts["a"].script = ["421"]
        bench = await farm_bench(
            farm.port,
            path={
                "try_next_host_on_transport_error": True,
                "reconnect_strategy": "TerminateSession",
            },
        )
        message = await bench.inject("one@plan.example")
        (failure,) = await bench.wait_for_records("TransientFailure", 1)
        await bench.wait_until(lambda: message.num_attempts == 1)
        assert _host(failure) == "a" and failure["response"]["code"] == 421
        assert bench.log_sink.of_type("Delivery") == [] and farm.order() == ["a"]


async def test_a_session_retries_at_once_no_more_often_than_its_plan_has_addresses(
    farm_bench: Any,
) -> None:
    # KumoMTA would send the message to a host that answers 421 to every attempt again
    # and again (ReconnectSameHost, nothing counted). kumocore's bound: one immediate
    # retry per address of the plan (here one), then an ordinary, counted retry.
    async with MxFarm({"a": Host(ADDRESSES["a"], script=["421"] * 10)}) as farm:
        bench = await farm_bench(
            farm.port,
            path={
                "try_next_host_on_transport_error": True,
                "reconnect_strategy": "ReconnectSameHost",
            },
        )
        message = await bench.inject("one@one.example")
        await bench.wait_until(lambda: message.num_attempts == 1)
        await asyncio.sleep(0.5)  # no further connection comes
        failures = bench.log_sink.of_type("TransientFailure")
        assert [r["response"]["code"] for r in failures] == [421, 421]
        assert [r["num_attempts"] for r in failures] == [0, 0]
        assert farm.order() == ["a", "a"] and message.num_attempts == 1


async def test_the_next_connection_after_a_broken_one_waits_out_the_path_backoff(
    farm_bench: Any,
) -> None:
    # kumocore's bound on ReconnectSameHost (KumoMTA reconnects at once): each
    # connection that broke without a reply doubles the pause before the next one.
    async with MxFarm({"a": Host(ADDRESSES["a"], script=["drop", "drop"])}) as farm:
        bench = await farm_bench(farm.port, path={"reconnect_strategy": "ReconnectSameHost"})
        for name in ("one", "two", "three"):
            await bench.inject(f"{name}@one.example")
        (delivery,) = await bench.wait_for_records("Delivery", 1, timeout=15)
        assert delivery["recipient"] == "three@one.example"
        assert farm.order() == ["a", "a", "a"]
        first, second, third = farm.connected_at
        assert second - first >= 0.9 and third - second >= 1.9


async def test_try_next_host_sends_a_message_whose_rset_was_refused_to_the_next_host(
    farm_bench: Any,
) -> None:
    # The second transaction on b starts with RSET, which b refuses: a failure outside
    # the transaction, so the message goes on to c at once, its attempt not counted.
    farm = _farm([])
    farm.hosts["b"].rset_reply = "451 4.3.0 not now"
    async with farm:
        bench = await farm_bench(farm.port, path={"try_next_host_on_transport_error": True})
        _first, second = await _send_two(bench)
        deliveries = await bench.wait_for_records("Delivery", 2)
        assert [(r["recipient"], _host(r)) for r in deliveries] == [
            ("one@plan.example", "b"),
            ("two@plan.example", "c"),
        ]
        (failure,) = bench.log_sink.of_type("TransientFailure")
        assert failure["recipient"] == "two@plan.example"
        assert failure["response"]["code"] == 451 and failure["response"]["command"] == "RSET"
        assert second.num_attempts == 0 and farm.order() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("code", "command", "retried"),
    [
        (421, ".", True),  # the MX closes the session
        (421, "MAIL FROM", True),
        (451, "RSET", True),  # outside the transaction
        (400, ".", False),  # connection lost at the dot: about the message
        (451, "RCPT TO", False),
        (400, None, False),  # no command: KumoMTA counts it as the message's
    ],
)
def test_which_failures_try_next_host_retries_at_once(
    code: int, command: str | None, retried: bool
) -> None:
    from kumocore.mail.response import Response
    from kumocore.queue.reconnect import retry_on_next_host

    assert retry_on_next_host(Response(code, "x", command=command)) is retried
