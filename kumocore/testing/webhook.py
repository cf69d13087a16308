"""A webhook that records the JSON log records POSTed to it, for testing log hooks.

A log hook (``policy-extras.log_hooks:new_json`` or a custom one) POSTs either one record
(a JSON object) or a batch (a JSON array). The receiver keeps every record in arrival
order, duplicates included, so a test can check at-least-once delivery: nothing the local
log has is missing, and how many arrived twice. It can be told to fail (HTTP 500) to
exercise the hook's retries, and it is started late or stopped to play a target that is
down.
"""

from __future__ import annotations

import collections
import json
import socket
from typing import Any

from aiohttp import web


def record_key(record: dict[str, Any]) -> str:
    """One record as canonical JSON: equal records, equal keys."""
    return json.dumps(record, sort_keys=True)


class RecordingWebhook:
    """An HTTP receiver on ``127.0.0.1:port`` (0: a free port, known after :meth:`start`)
    taking POSTs at ``path``."""

    def __init__(self, port: int = 0, path: str = "/log") -> None:
        self.port = port
        self.path = path
        self.records: list[dict[str, Any]] = []
        self.posts = 0  # POSTs accepted
        self.refused = 0  # POSTs answered 500 while ``failing``
        self.bad_bodies: list[bytes] = []  # POSTs that were no JSON object or array
        #: answer 500 to every POST (and keep nothing) while set
        self.failing = False
        self._runner: web.AppRunner | None = None

    def counts(self) -> collections.Counter[str]:
        """How often each record (by :func:`record_key`) arrived."""
        return collections.Counter(record_key(record) for record in self.records)

    async def _receive(self, request: web.Request) -> web.Response:
        if self.failing:
            self.refused += 1
            return web.Response(status=500, text="failing on purpose")
        body = await request.read()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        batch = [parsed] if isinstance(parsed, dict) else parsed
        if not isinstance(batch, list) or not all(isinstance(r, dict) for r in batch):
            # A hook that sends something else is the bug a test wants to see: keep it.
            self.bad_bodies.append(body)
            return web.json_response({"error": "expected a JSON object or array"}, status=400)
        self.records.extend(batch)
        self.posts += 1
        return web.Response(text="ok")

    async def start(self) -> RecordingWebhook:
        app = web.Application()
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        # Our own socket: port 0 then tells us the port, and a restart can reuse it at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        """Stop listening (the records stay); it can be started again."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> RecordingWebhook:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
