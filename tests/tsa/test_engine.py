"""Automation rules, the engine and its stores: which records match, when a rule fires,
what the stores keep (the Redis one against a real ``redis-server``)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kumocore_lua_policy.extras import shaping
from kumocore_lua_policy.extras.shaping_automation import ShapingAutomation

from bench.common.redis_server import RedisServer, require_redis_server
from kumocore.node.runtime import Runtime
from kumocore.tsa.engine import TsaEngine
from kumocore.tsa.store import ActiveAction, LocalActionStore

RATE = {"SetConfig": {"name": "max_message_rate", "value": "1/s"}}


def rule(regex: str, action: Any = "Suspend", **extra: Any) -> dict[str, Any]:
    return {"regex": regex, "action": action, "duration": "1 hour", **extra}


async def automation(data: dict[str, Any]) -> ShapingAutomation:
    return ShapingAutomation(await shaping.load([data]))


def record(content: str, *, recipient: str = "u@x.test", code: int = 421,
           queue: str = "x.test", when: float | None = None) -> dict[str, Any]:  # fmt: skip
    """A KumoMTA JSON log record as its shaping helper publishes it."""
    return {
        "type": "TransientFailure", "recipient": [recipient], "queue": queue,
        "site": "pool1->mx.x.test@smtp_client", "egress_source": "pool1",
        "response": {"code": code, "enhanced_code": (
                        {"class": 4, "subject": 7, "detail": 28} if code == 421 else None),
                     "content": content, "command": None},
        "timestamp": int(when if when is not None else time.time()),
    }  # fmt: skip


async def test_rules_apply_in_kumomta_order_default_provider_site_then_domain() -> None:
    auto = await automation({
        "default": {"automation": [rule("D")]},
        "provider": {"big": {"match": [{"DomainSuffix": ".test"}], "automation": [rule("P")]},
                     "other": {"match": [{"DomainSuffix": ".example"}],
                               "automation": [rule("O")]}},
        "x.test": {"mx_rollup": False, "automation": [rule("X")]},
        "y.test": {"mx_rollup": False, "automation": [rule("Y")]},
    })  # fmt: skip
    found = await auto.rules_for("x.test", "mx.x.test")
    assert [r.regex[0] for r in found] == ["D", "P", "X"]
    assert [r.rollup for r in found] == [True, True, False]
    assert found[2].origin == '<inline table 1>: "x.test".automation[1]'


async def test_internal_responses_match_only_rules_that_ask_for_them() -> None:
    auto = await automation({"x.test": {"mx_rollup": False, "automation": [
        rule("down", match_internal=True), rule("down", action="SuspendTenant")]}})
    rules = await auto.rules_for("x.test", "")
    internal = "421 4.4.2 KumoMTA internal: mx is down"
    assert [r.matches(internal, True) for r in rules] == [True, False]
    assert [r.matches("421 4.4.2 host is down", False) for r in rules] == [True, True]
    # The hot-path pre-check lets through what some rule could match, and only that.
    assert auto.could_match("421 4.4.2 host is down", False)
    assert not auto.could_match("250 2.0.0 OK queued", False)


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    yield Runtime(load_entrypoints=False)


async def engine_for(runtime: Runtime, data: dict[str, Any]) -> TsaEngine:
    auto = await automation(data)
    engine = TsaEngine(runtime, auto.rules_for, LocalActionStore(), interval=0.05)
    engine.start()
    return engine


async def settle(engine: TsaEngine) -> None:
    while engine._tasks:
        await asyncio.gather(*list(engine._tasks))
        await asyncio.sleep(0)  # let the tasks' done callbacks run
    await engine.sync()


async def test_a_threshold_rule_fires_on_the_nth_match_within_its_duration(
    runtime: Runtime,
) -> None:
    engine = await engine_for(runtime, {"x.test": {"mx_rollup": False, "automation": [
        rule(r"4\.7\.28", action=RATE, trigger={"Threshold": "3/hr"})]}})
    try:
        for n in range(2):
            assert engine.observe_json(record("rate limited"))
            await settle(engine)
            assert await engine.list_actions() == [], f"fired after {n + 1} matches"
        engine.observe_json(record("not this one", code=250))
        await settle(engine)
        assert await engine.list_actions() == []
        engine.observe_json(record("rate limited"))
        await settle(engine)
        [action] = await engine.list_actions()
        assert (action.kind, action.name, action.value) == ("SetConfig", "max_message_rate",
                                                            "1/s")  # fmt: skip
        assert (action.site_name, action.source, action.matches) == ("mx.x.test", "pool1", 3)
        assert 3590 < action.expires - time.time() <= 3600
        assert engine.overrides_for("x.test", "pool1", "mx.x.test") == {"max_message_rate": "1/s"}
        assert engine.overrides_for("x.test", "other", "mx.x.test") == {}
        assert await engine.cancel(action.id)
        assert engine.overrides_for("x.test", "pool1", "mx.x.test") == {}
        assert not await engine.cancel(action.id)
    finally:
        await engine.stop()


async def test_late_records_and_tenantless_tenant_suspensions_record_nothing(
    runtime: Runtime,
) -> None:
    engine = await engine_for(runtime, {"x.test": {"mx_rollup": False, "automation": [
        rule("late"), rule("tenant", action="SuspendTenant")]}})
    try:
        engine.observe_json(record("late", when=time.time() - 7200))  # its hour is over
        engine.observe_json(record("tenant"))  # queue "x.test" names no tenant
        await settle(engine)
        assert await engine.list_actions() == []
        engine.observe_json(record("tenant", queue="camp:acme@x.test"))
        await settle(engine)
        [action] = await engine.list_actions()
        assert (action.kind, action.tenant, action.campaign) == ("SuspendTenant", "acme", None)
        assert not engine.observe_json({"type": "Delivery", "recipient": "nobody"})
    finally:
        await engine.stop()


async def test_each_tenant_and_campaign_matching_a_rule_gets_its_own_suspension(
    runtime: Runtime,
) -> None:
    engine = await engine_for(runtime, {"x.test": {"mx_rollup": False, "automation": [
        rule("tenant", action="SuspendTenant"), rule("camp", action="SuspendCampaign")]}})
    try:
        for queue in ("acme@x.test", "bravo@x.test"):
            engine.observe_json(record("tenant", queue=queue))
        for queue in ("c1:acme@x.test", "c2:acme@x.test"):
            engine.observe_json(record("camp", queue=queue))
        await settle(engine)
        held = {(a.kind, a.tenant, a.campaign) for a in await engine.list_actions()}
        assert held == {
            ("SuspendTenant", "acme", None), ("SuspendTenant", "bravo", None),
            ("SuspendCampaign", "acme", "c1"), ("SuspendCampaign", "acme", "c2"),
        }
        # KumoMTA's daemon names what a tenant suspension holds in its reason, and
        # identifies an action as "<site>-<sha256 hex>".
        actions = await engine.list_actions()
        reasons = {(a.tenant, a.campaign): a.reason for a in actions}
        assert reasons[("bravo", None)] == "automation rule: tenant tenant=bravo domain=x.test"
        assert reasons[("acme", "c2")] == (
            "automation rule: camp tenant=acme domain=x.test campaign=c2")
        assert all(re.fullmatch(r"pool1->mx\.x\.test@smtp_client-[0-9a-f]{64}", a.id)
                   for a in actions)
    finally:
        await engine.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer() as server:
        yield server


async def test_the_redis_store_shares_matches_and_actions_between_clients(
    redis_server: RedisServer,
) -> None:
    from kumocore_redis_throttles import RedisOptions, RedisThrottleStore

    options = RedisOptions.from_table({"node": redis_server.url})
    one, two = [await RedisThrottleStore.connect(options) for _ in range(2)]
    try:
        a, b = one.automation_store(), two.automation_store()
        now = time.time()
        assert await a.count_match("r:site", 10, now - 20) == 1
        assert await b.count_match("r:site", 10, now - 1) == 1  # the first left the window
        assert await a.count_match("r:site", 10, now) == 2
        action = ActiveAction(id="site-1", kind="Suspend", rule="f: k", reason="r",
                              site="s->m@smtp_client", site_name="m", source="s",
                              domain="x.test", since=now - 5, expires=now + 60)  # fmt: skip
        await a.put(action)
        again = ActiveAction(**{**action.__dict__, "since": now, "expires": now + 120})
        await b.put(again)
        [seen] = (await a.active()).values()
        assert (seen.since, seen.expires) == (now - 5, now + 120)  # first seen, extended
        gone = ActiveAction(**{**action.__dict__, "id": "old", "expires": now - 1})
        await a.put(gone)
        assert set(await b.active()) == {"site-1"}
        assert await b.cancel("site-1") and not await a.cancel("site-1")
        assert await a.active() == {}
    finally:
        await one.close()
        await two.close()


async def test_a_reloaded_policy_replaces_the_rules_but_not_the_service(
    runtime: Runtime,
) -> None:
    from kumocore.errors import ConfigError
    from kumocore.tsa.setup import configure

    first = await automation({"x.test": {"mx_rollup": False, "automation": [rule("old")]}})
    engine = configure(runtime, first.rules_for, ["local"], ["local"], first.could_match)
    second = await automation({"x.test": {"mx_rollup": False, "automation": [rule("new")]}})
    again = configure(runtime, second.rules_for, ["local"], ["local"], second.could_match)
    assert again is engine and engine.could_match == second.could_match
    assert [r.regex for r in await engine.rules_for("x.test", "")] == [("new",)]
    with pytest.raises(ConfigError, match=r"publish/subscribe changed .* restart"):
        configure(runtime, second.rules_for, ["redis-throttles"], ["redis-throttles"])


async def test_an_action_is_logged_at_info_once_however_many_records_match(
    runtime: Runtime,
) -> None:
    from structlog.testing import capture_logs

    engine = await engine_for(runtime, {"x.test": {"mx_rollup": False, "automation": [
        rule(r"\[TS04\]")]}})  # fmt: skip
    try:
        with capture_logs() as logs:
            for _ in range(5):
                assert engine.observe_json(record("[TS04] deferred"))
                await settle(engine)
        recorded = [e["log_level"] for e in logs if e["event"] == "automation action recorded"]
        # The debug lines show only while the log filter lets debug through.
        assert recorded[0] == "info" and set(recorded[1:]) <= {"debug"}
        assert len(await engine.list_actions()) == 1
    finally:
        await engine.stop()
