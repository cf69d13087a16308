"""Reliability section ``tsa``: hostile input to traffic shaping automation.

In process (no server needed): a runtime with automation on an in-process store serves
the automation endpoints on a real loopback listener. Each case sends what a broken or
hostile publisher might (``POST /publish_log_v1``) or sets automation up wrongly, and
holds when the answer is a specific error (HTTP 4xx with a JSON error, a load error naming
the problem) and the engine keeps working (the next genuine record still acts).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.reliability.bench import Bench

RULES = {"x.test": {"mx_rollup": False, "automation": [
    {"regex": r"4\.7\.28", "action": "Suspend", "duration": "1 hour",
     "trigger": {"Threshold": "1000000/hr"}}]}}  # fmt: skip


def _record(n: int = 0, **extra: Any) -> dict[str, Any]:
    return {"type": "TransientFailure", "recipient": f"u{n}@x.test", "queue": "x.test",
            "site": "s->mx.x.test@smtp_client", "egress_source": "s",
            "timestamp": int(time.time()),
            "response": {"code": 421, "content": "4.7.28 rate limited"}, **extra}  # fmt: skip


#: case -> (request body, statuses that hold)
BODIES: dict[str, tuple[bytes, tuple[int, ...]]] = {
    "not JSON": (b"{\x00\xff", (400,)),
    "JSON nested 100k deep": (b"[" * 100_000 + b"]" * 100_000, (400,)),
    "record without recipient": (json.dumps({"type": "Delivery"}).encode(), (400,)),
    "recipient not a string": (json.dumps(_record(recipient=[1, 2])).encode(), (400,)),
    "response content 1 MB": (json.dumps(_record(
        response={"code": 421, "content": "a" * 1_000_000})).encode(), (200,)),
    "20k records in one request": (json.dumps([_record(n) for n in range(20_000)]).encode(),
                                   (200,)),
}  # fmt: skip

#: case -> (publish, subscribe, text the load error must contain)
SETUPS = {
    "unknown publish scheme": ("{ 'amqp://x' }", "{}", "is not a TSA URL"),
    "two stores": ("{ 'local' }", "{ 'redis-throttles' }", "not both"),
    "subscribe not a list": ("{}", "'redis-throttles'", "must be a list"),
}


async def section_tsa(bench: Bench) -> None:
    await _hostile_bodies(bench)
    await _bad_setups(bench)


async def _hostile_bodies(bench: Bench) -> None:
    import aiohttp
    from aiohttp import web
    from kumocore_lua_policy.extras import shaping
    from kumocore_lua_policy.extras.shaping_automation import setup

    from kumocore.node.runtime import Runtime
    from kumocore.tsa.http import add_tsa_routes
    from kumocore.tsa.setup import configure

    runtime = Runtime(load_entrypoints=False)
    setup(await shaping.load([RULES]), lambda *a: configure(runtime, *a), ["local"], ["local"])
    engine = runtime.tsa
    assert engine is not None
    engine.start()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    add_tsa_routes(app, runtime)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            for case, (body, ok) in BODIES.items():
                started = time.monotonic()
                async with http.post(f"{url}/publish_log_v1", data=body) as response:
                    status = response.status
                    text = await response.text()
                elapsed = time.monotonic() - started
                held = status in ok and (status == 200 or '"error"' in text) and elapsed < 30
                bench.hostile("tsa", case, held, f"{status} {text[:200]!r} in {elapsed:.1f}s")
            # Still working: a genuine record is matched (the counters move).
            before = engine.counters["matches"]
            async with http.post(f"{url}/publish_log_v1", json=_record()) as response:
                await response.read()
            deadline = time.monotonic() + 30
            while engine.counters["matches"] == before and time.monotonic() < deadline:
                await _pause()
            bench.hostile("tsa", "engine still matches after the hostile bodies",
                          engine.counters["matches"] > before, str(engine.counters))  # fmt: skip
    finally:
        await engine.stop()
        await runner.cleanup()


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def _bad_setups(bench: Bench) -> None:
    from kumocore.errors import ConfigError, HookError, PolicyError
    from kumocore.node.runtime import Runtime

    for case, (publish, subscribe, expected) in SETUPS.items():
        directory = Path(tempfile.mkdtemp(dir=bench.workdir))
        policy = directory / "policy.lua"
        policy.write_text(
            "require('policy-extras.shaping'):setup_with_automation { no_default_files = true,"
            f" publish = {publish}, subscribe = {subscribe} }}\n")
        try:
            await Runtime(load_entrypoints=True).load(policy)
        except (ConfigError, PolicyError, HookError) as exc:
            bench.hostile("tsa", case, expected in str(exc), str(exc)[:300])
        except Exception as exc:
            bench.hostile("tsa", case, False, f"{type(exc).__name__} escapes: {exc}")
        else:
            bench.hostile("tsa", case, False, "the policy loaded")
