"""The status page's routes: ``/status``, ``/status/events``, ``/status/static/*`` and the
data endpoint ``GET /api/admin/status/v1``.

The page and the stream are read-only; the page's buttons call the ordinary admin API.
Access is the admin API's (trusted hosts only, :mod:`kumocore.http.auth`). The stream is
Server-Sent Events: one shared poller per listener computes the node's status once a
second while at least one browser is attached (and not at all otherwise), and hands the
same JSON text to every subscriber, so N browsers cost about what one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from kumocore.node.tasks import cancel_and_wait
from kumocore.status.page import render_page

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

log = structlog.get_logger("kumocore.status")

__all__ = ["EVENT_INTERVAL", "StatusHub", "add_status_page", "node_status"]

#: Seconds between two status events.
EVENT_INTERVAL = 1.0
STATIC_FILES = {"status.js": "text/javascript", "status.css": "text/css",
                "favicon.svg": "image/svg+xml"}
#: The page loads nothing but its own files and talks only to its own origin.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; frame-ancestors 'none'; "
                               "form-action 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}  # fmt: skip

HUB_KEY: web.AppKey[StatusHub] = web.AppKey("kumocore.status_hub")


async def node_status(runtime: Runtime) -> dict[str, Any]:
    """The whole node's status: this worker's, merged with the other workers' answers to
    ``GET /api/admin/status/v1`` (with ``serve --workers N``)."""
    from kumocore.admin.merge import merge_statuses
    from kumocore.admin.routes import STATUS_PATH, status_stepwise

    local = await status_stepwise(runtime)
    node = runtime.node
    if node is None:
        return local
    answers = await node.ask_others("GET", STATUS_PATH, b"", {})
    return merge_statuses([local, *(json.loads(a.body) for a in answers if a.status == 200)])


class StatusHub:
    """Polls the node's status once a second while anyone listens; fans it out."""

    def __init__(self, runtime: Runtime, interval: float = EVENT_INTERVAL) -> None:
        self.runtime = runtime
        self.interval = interval
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=4)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._subscribers.discard(queue)

    async def _poll(self) -> None:
        while self._subscribers:
            try:
                text = json.dumps(await node_status(self.runtime), separators=(",", ":"))
            except Exception as exc:  # a bad tick must not end the stream for everyone
                log.error("status snapshot failed", error=str(exc))
                text = json.dumps({"error": str(exc)})
            for queue in list(self._subscribers):
                if queue.full():  # a slow browser skips a tick rather than growing memory
                    continue
                queue.put_nowait(text)
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()
        await cancel_and_wait(self._task)


async def status_page(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    status = await node_status(hub.runtime)
    return web.Response(text=render_page(status), content_type="text/html",
                        charset="utf-8", headers=PAGE_HEADERS)  # fmt: skip


async def status_events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})  # fmt: skip
    await response.prepare(request)
    queue = hub.subscribe()
    try:
        await response.write(b"retry: 2000\n\n")
        while (text := await queue.get()) is not None:
            await response.write(f"event: status\ndata: {text}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the browser went away (or the listener is closing)
    finally:
        hub.unsubscribe(queue)
    return response


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text=f"no static file {name!r}")
    body = resources.files("kumocore.status").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=content_type, charset="utf-8",
                        headers={"Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff"})  # fmt: skip


def add_status_page(app: web.Application, runtime: Runtime) -> None:
    """``/status``, its event stream and its assets (the public HTTP listener only)."""
    hub = StatusHub(runtime)
    app[HUB_KEY] = hub

    async def close_hub(_: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(close_hub)
    app.router.add_get("/status", status_page)
    app.router.add_get("/status/events", status_events)
    app.router.add_get("/status/static/{name}", static_file)
