"""Aborting a ready queue's connection (``abort-ready-q-conn``) cancels its task once: an
operator who asks again while the connection is still closing (QUIT, releasing its slot)
must not cut that clean-up short, which would leave the socket and the slot behind."""

from __future__ import annotations

import asyncio
import uuid

from kumocore.queue.dispatchers import Dispatchers


async def test_a_second_abort_while_the_first_unwinds_does_not_cancel_the_clean_up() -> None:
    dispatchers = Dispatchers("unspecified->mx.test@smtp_client")
    registered = asyncio.Event()
    cleaned_up: list[str] = []

    async def connection() -> None:
        dispatcher = dispatchers.enter()
        registered.set()
        try:
            await asyncio.Event().wait()  # delivering, until aborted
        finally:
            await asyncio.sleep(0.05)  # closing the session: QUIT, wait for the peer
            cleaned_up.append("closed")
            dispatchers.leave(dispatcher)

    task = asyncio.ensure_future(connection())
    await registered.wait()
    (dispatcher,) = list(dispatchers)
    assert dispatchers.abort(dispatcher.session_id)
    await asyncio.sleep(0.01)  # the first abort is unwinding the connection
    assert dispatchers.abort(dispatcher.session_id)  # the operator's intent still holds
    await asyncio.gather(task, return_exceptions=True)
    assert cleaned_up == ["closed"]
    assert not dispatchers.abort(dispatcher.session_id)  # gone now
    assert not dispatchers.abort(uuid.uuid4())
