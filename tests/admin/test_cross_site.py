"""Admin suspend/bounce: cross-site simple POSTs, foreign Origins and rebinding Hosts are
refused before anything changes (issue 14, #14), through a real HTTP listener."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from kumocore.config import HttpListenerConfig
from kumocore.http.server import HttpListener, start_http_listener
from kumocore.node.runtime import Runtime

RULE = {"domain": "example.com", "reason": "csrf", "duration": "1h"}


@pytest.fixture
async def listener(runtime: Runtime) -> AsyncIterator[HttpListener]:
    config = HttpListenerConfig.from_options({"listen": "127.0.0.1:0", "hostname": "mta.test"})
    started = await start_http_listener(runtime, config)
    yield started
    await started.close()


async def post(listener: HttpListener, path: str, **kwargs: object) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, \
            session.post(listener.url + path, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize("kind", ["suspend", "bounce"])
async def test_text_plain_admin_post_is_refused_and_nothing_changes(
    listener: HttpListener, runtime: Runtime, kind: str
) -> None:
    status, body = await post(listener, f"/api/admin/{kind}/v1", data=json.dumps(RULE),
                              headers={"Content-Type": "text/plain"})
    assert status == 415, body
    assert runtime.services.queues is not None
    assert runtime.services.queues.admin.list_suspensions() == []
    assert runtime.services.queues.admin.list_bounces() == []


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"},
                                     {"Host": "rebind.evil.example"}])
async def test_cross_site_admin_suspend_is_refused_with_403(
    listener: HttpListener, runtime: Runtime, headers: dict[str, str]
) -> None:
    status, _ = await post(listener, "/api/admin/suspend/v1", json=RULE, headers=headers)
    assert status == 403
    assert runtime.services is not None
    assert runtime.services.queues.admin.list_suspensions() == []


async def test_json_admin_suspend_from_the_same_origin_works(
    listener: HttpListener, runtime: Runtime
) -> None:
    status, body = await post(listener, "/api/admin/suspend/v1", json=RULE,
                              headers={"Origin": listener.url})
    assert status == 200, body
    assert runtime.services is not None
    assert len(runtime.services.queues.admin.list_suspensions()) == 1
