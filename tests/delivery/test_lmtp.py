"""``use_lmtp``: the session greets with LHLO (RFC 2033) instead of EHLO, and the one
reply an LMTP server gives after the dot for the transaction's one recipient decides
the message's outcome, as an SMTP server's reply to the dot would."""

from __future__ import annotations

from typing import Any

from tests.delivery.conftest import ADDRESSES
from tests.support.mx_farm import Host, MxFarm


async def test_an_lmtp_server_is_greeted_with_lhlo_and_its_replies_decide_the_outcomes(
    farm_bench: Any,
) -> None:
    async with MxFarm({"a": Host(ADDRESSES["a"], lmtp=True)}) as farm:
        bench = await farm_bench(farm.port, path={"use_lmtp": True})
        for local in ("someone", "full", "nouser"):
            await bench.inject(f"{local}@lmtp.example")
        (delivery,) = await bench.wait_for_records("Delivery", 1)
        (deferred,) = await bench.wait_for_records("TransientFailure", 1)
        (bounce,) = await bench.wait_for_records("Bounce", 1)
        assert delivery["recipient"] == "someone@lmtp.example"
        assert delivery["response"]["code"] == 250
        assert "<someone@lmtp.example> delivered" in delivery["response"]["content"]
        assert deferred["recipient"] == "full@lmtp.example"
        assert deferred["response"]["code"] == 452 and deferred["response"]["command"] == "."
        assert bounce["recipient"] == "nouser@lmtp.example"
        assert bounce["response"]["code"] == 550
        greetings = [event for _, event in farm.events if event in ("EHLO", "LHLO")]
        assert greetings and set(greetings) == {"LHLO"}
        # one recipient per transaction: every body went to exactly one recipient
        taken = [event for _, event in farm.events if event.startswith("data ")]
        assert sorted(taken) == sorted(
            f"data {local}@lmtp.example" for local in ("someone", "full", "nouser")
        )


async def test_an_smtp_only_server_refusing_lhlo_fails_the_connection_transiently(
    farm_bench: Any,
) -> None:
    async with MxFarm({"a": Host(ADDRESSES["a"])}) as farm:
        bench = await farm_bench(farm.port, path={"use_lmtp": True})
        await bench.inject("someone@lmtp.example")
        (failure,) = await bench.wait_for_records("TransientFailure", 1)
        assert "LHLO reply: 500" in failure["response"]["content"]
        assert [event for _, event in farm.events if event != "connect"] == ["LHLO"]


async def test_without_use_lmtp_the_session_says_ehlo(farm_bench: Any) -> None:
    async with MxFarm({"a": Host(ADDRESSES["a"])}) as farm:
        bench = await farm_bench(farm.port)
        await bench.inject("someone@lmtp.example")
        await bench.wait_for_records("Delivery", 1)
        assert ("a", "EHLO") in farm.events and ("a", "LHLO") not in farm.events


async def test_lhlo_is_said_again_after_starttls(farm_bench: Any) -> None:
    async with MxFarm({"a": Host(ADDRESSES["a"], lmtp=True, starttls=True)}) as farm:
        bench = await farm_bench(
            farm.port, path={"use_lmtp": True, "enable_tls": "OpportunisticInsecure"}
        )
        await bench.inject("someone@lmtp.example")
        (delivery,) = await bench.wait_for_records("Delivery", 1)
        assert delivery["tls_protocol_version"]
        assert [event for _, event in farm.events if event != "connect"][:3] == [
            "LHLO",
            "STARTTLS",
            "LHLO",
        ]
