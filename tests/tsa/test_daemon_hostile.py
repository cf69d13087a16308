"""``kumocore tsa serve`` against a hostile or broken trusted node: what the service's
other clients see while it works through the biggest bodies its listener takes, and a
subscriber that stops reading."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from bench.common.serve_process import free_port
from kumocore.node.runtime import Runtime
from kumocore.tsa.engine import SUBSCRIBER_BACKLOG
from kumocore.tsa.setup import configure
from kumocore.tsa.store import ActiveAction
from tests.support.server_gc import collector_restored
from tests.support.ticker import LoopTicker
from tests.tsa.test_daemon_policy import RULE, listener, serving, write_policy
from tests.tsa.test_http_and_validate import kumomta_record

pytestmark = pytest.mark.slow

LIMIT = 16 * 1024 * 1024  # what --listen takes


def _record(content: str, **extra: Any) -> dict[str, Any]:
    response = {"code": 421, "enhanced_code": None, "content": content, "command": None}
    return kumomta_record(response=response, **extra)


async def _post(url: str, body: bytes) -> tuple[int, str]:
    # A file-like body: the client's side of this same loop does not copy 16 MiB at once.
    async with aiohttp.ClientSession() as http, http.post(
        f"{url}/publish_log_v1", data=io.BytesIO(body),
        headers={"Content-Type": "application/json"},
    ) as response:  # fmt: skip
        return response.status, await response.text()


async def _actions(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/admin/tsa/v1") as response:
        assert response.status == 200, await response.text()
        actions: list[dict[str, Any]] = (await response.json())["actions"]
    return actions


def _policy(tmp_path: Path, port: int, rules: int = 1) -> Path:
    (tmp_path / "rules.toml").write_text(
        "".join(RULE.replace("{regex}", f"AAA{n}|TS04") for n in range(rules))
    )
    return write_policy(tmp_path, listener(port, f"request_body_limit = {LIMIT}"))


async def test_a_16_mib_array_of_records_is_worked_through_without_stalling_others(
    tmp_path: Path,
) -> None:
    port = free_port()
    records = [_record("[TS04] deferred", recipient=[f"u{n}@x.test"]) for n in range(60_000)]
    body = orjson.dumps(records)
    assert LIMIT * 0.9 < len(body) < LIMIT
    async with serving(_policy(tmp_path, port), port, state_file="") as url:
        async with LoopTicker() as ticker:
            status, text = await _post(url, body)
        assert (status, text) == (200, "")
        # Decoded whole and matched in one go (a task per record), this held the loop
        # for 3.4 s; one record at a time in 5 ms slices the longest gap measured was
        # about 20 ms.
        assert ticker.longest < 0.1, ticker.longest
        [action] = await _actions(url)
        assert action["kind"] == "Suspend" and action["matches"] == 1
        # The records before a broken one are taken; the error says where it broke.
        broken = b"[" + orjson.dumps(_record("x")) + b",{oops"
        status, text = await _post(url, broken)
        assert status == 400 and "request body is not JSON: Expecting property name" in text
        status, text = await _post(url, b"[" * 1_000_000)
        assert (status, orjson.loads(text)) == (
            400, {"error": "request body is not JSON: nested too deeply at char 1"})  # fmt: skip


async def test_a_response_megabytes_long_is_matched_only_as_far_as_a_reply_goes(
    tmp_path: Path,
) -> None:
    port = free_port()
    huge = "x" * (15 << 20) + " [TS04]"  # past what any SMTP reply can be
    body = orjson.dumps([_record(huge), _record("[TS04] " + "y" * 1000)])
    async with serving(_policy(tmp_path, port, rules=20), port, state_file="") as url:
        async with LoopTicker() as ticker:
            status, _ = await _post(url, body)
        assert status == 200
        # Each of the 20 rules searched all 15 MB: a 1.4 s stall.
        assert ticker.longest < 0.15, ticker.longest
        actions = await _actions(url)
        assert {a["matches"] for a in actions} == {1} and len(actions) == 20


async def test_a_record_from_the_far_future_counts_as_now(tmp_path: Path) -> None:
    port = free_port()
    async with serving(_policy(tmp_path, port), port, state_file="") as url:
        status, _ = await _post(url, orjson.dumps(_record("[TS04]", timestamp=1e300)))
        assert status == 200
        # Its action expired in 1e300: no date format could show it, and the listing,
        # shaping.toml and the subscribers failed on it.
        [action] = await _actions(url)
        assert abs(action["expires"] - (time.time() + 1800)) < 60


async def test_a_subscriber_that_stops_reading_is_dropped_the_others_get_every_event() -> None:
    node = Runtime(load_entrypoints=False)
    engine = configure(node, lambda domain, site: [], ["local"], ["local"])
    engine.start()
    try:
        stuck, reading = engine.subscribe(), engine.subscribe()
        got: list[str] = []
        for n in range(SUBSCRIBER_BACKLOG + 1):
            await engine.store.put(ActiveAction(
                id=f"a{n}", kind="Suspend", rule="r", reason="r", site=f"s{n}",
                site_name=f"s{n}", source="src", domain="x.test", since=time.time(),
                expires=time.time() + 60))  # fmt: skip
            if n % 10_000 == 9_999 or n == SUBSCRIBER_BACKLOG:
                # A full queue raised out of the sync: the subscribers after the stuck
                # one missed the event, and the sync loop logged a store outage.
                await engine.sync()
                while not reading.empty():
                    got.append(reading.get_nowait().id)
        assert len(got) == SUBSCRIBER_BACKLOG + 1
        assert not engine.subscribed(stuck) and engine.subscribed(reading)
    finally:
        await engine.stop()


MANY_RULE = """
[["x.test".automation]]
regex = "TS04"
action = ["Suspend", { SetConfig = { name = "connection_limit", value = 1 } }]
duration = "30 minutes"
"""


@pytest.mark.serial  # a stall bound (100 ms): measured on a machine not running other tests
async def test_listing_thousands_of_actions_does_not_stall_others(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "rules.toml").write_text(MANY_RULE)
    policy = write_policy(tmp_path, listener(port, f"request_body_limit = {LIMIT}"))
    sites = 20_000
    records = [_record("TS04", site=f"src->mx{n}.x.test@smtp_client") for n in range(sites)]
    # With `kumocore tsa serve`'s collector settings: a plain process's full collections
    # of the 40,000 actions (and here of pytest's heap) were 20-110 ms stops of their own.
    with collector_restored():
        async with serving(policy, port, state_file="", tune_gc=True) as url:
            assert await _post(url, orjson.dumps(records)) == (200, "")
            await _list_and_time(url, sites)


async def _list_and_time(url: str, sites: int) -> None:
    """Lists the 2 * ``sites`` actions each way an operator or a node can, each while a
    ticker watches the loop: no listing holds it 0.1 s."""
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            async with http.get(f"{url}/api/admin/tsa/v1") as response:
                listed = (await response.json())["actions"]
            if sum(a["applied"] for a in listed) == 2 * sites:
                break
            await asyncio.sleep(0.2)
        assert len(listed) == 2 * sites
        timings = {}
        for path in (
            "/get_config_v1/shaping.toml",
            "/api/admin/tsa/v1",
            "/get_suspension_v1/suspended.json",
        ):
            async with LoopTicker() as ticker, http.get(f"{url}{path}") as response:
                assert response.status == 200
                await response.read()
            timings[path] = ticker.longest
        async with LoopTicker() as ticker, http.ws_connect(f"{url}/subscribe_event_v1") as ws:
            for _ in range(sites):
                await ws.receive_json()
        timings["/subscribe_event_v1"] = ticker.longest
    print(timings)
    assert max(timings.values()) < 0.1, timings


async def test_a_flood_of_cancellations_shares_its_syncs(tmp_path: Path) -> None:
    port = free_port()
    sites = 20_000
    records = [_record("TS04", site=f"src->mx{n}.x.test@smtp_client") for n in range(sites)]
    async with serving(_policy(tmp_path, port), port, state_file="") as url:
        assert await _post(url, orjson.dumps(records)) == (200, "")
        ids = [a["id"] for a in await _actions(url)]
        assert len(ids) == sites
        turns = asyncio.Semaphore(60)  # under the listener's 64 connections per peer

        async def cancel(http: aiohttp.ClientSession, action_id: str) -> int:
            async with (
                turns,
                http.delete(f"{url}/api/admin/tsa/v1", json={"id": action_id}) as response,
            ):
                return response.status

        async with aiohttp.ClientSession() as http, LoopTicker() as ticker:
            statuses = await asyncio.gather(*(cancel(http, i) for i in ids[:1200]))
        assert statuses == [200] * 1200
        # A sync (every action read) per DELETE: 0.29 s stalls, 4 ms per cancellation.
        assert ticker.longest < 0.15, ticker.longest
        left = await _actions(url)
        assert len(left) == sites - 1200 and not {a["id"] for a in left} & set(ids[:1200])
        assert all(a["applied"] for a in left)
