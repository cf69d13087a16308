"""kumocore.testing.RecordingWebhook: what a log hook test relies on, over real HTTP."""

from __future__ import annotations

import aiohttp

from kumocore.testing import RecordingWebhook


async def post(port: int, body: bytes) -> tuple[int, str]:
    url = f"http://127.0.0.1:{port}/log"
    async with aiohttp.ClientSession() as session, session.post(url, data=body) as response:
        return response.status, await response.text()


async def test_webhook_keeps_single_records_and_batches_in_order_with_duplicates() -> None:
    async with RecordingWebhook() as hook:
        assert hook.port != 0  # port 0 asked for a free one
        assert (await post(hook.port, b'{"id": 1}'))[0] == 200
        assert (await post(hook.port, b'[{"id": 2}, {"id": 1}]'))[0] == 200
    assert hook.records == [{"id": 1}, {"id": 2}, {"id": 1}]
    assert hook.posts == 2
    assert hook.counts()['{"id": 1}'] == 2


async def test_webhook_answers_500_while_failing_and_keeps_nothing_then_recovers() -> None:
    async with RecordingWebhook() as hook:
        hook.failing = True
        assert (await post(hook.port, b'[{"id": 1}]'))[0] == 500
        hook.failing = False
        assert (await post(hook.port, b'[{"id": 2}]'))[0] == 200
    assert hook.refused == 1 and hook.records == [{"id": 2}]


async def test_webhook_refuses_a_body_that_is_not_records_with_400_and_keeps_it() -> None:
    async with RecordingWebhook() as hook:
        status, text = await post(hook.port, b"not json")
        assert status == 400 and "expected a JSON object or array" in text
        assert (await post(hook.port, b"[1, 2]"))[0] == 400
    assert hook.bad_bodies == [b"not json", b"[1, 2]"] and hook.records == []


async def test_webhook_stopped_refuses_connections_and_starts_again_on_its_port() -> None:
    hook = await RecordingWebhook().start()
    port = hook.port
    await hook.stop()
    try:
        await post(port, b"{}")
        raise AssertionError("a stopped webhook accepted a connection")
    except aiohttp.ClientConnectionError:
        pass
    await hook.start()
    try:
        assert hook.port == port
        assert (await post(port, b'{"id": 3}'))[0] == 200
    finally:
        await hook.stop()
