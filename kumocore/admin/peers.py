"""The workers of one node, as seen by its admin API (``serve --workers N``).

Every worker owns its own queues, so a question asked of the node ("what is queued?",
"suspend gmail.com") must reach all of them. The supervisor gives its workers a private
directory (``KUMOCORE_NODE_DIR``, mode 0700); each worker serves its admin endpoints on a
Unix socket there (``worker-<k>.sock``), and the worker that receives an admin request on
the public listener asks the others through those sockets
(:mod:`kumocore.admin.fanout`). The sockets carry no authentication of their own: only
the node's user can reach a 0700 directory, and the public listener has already
authorised the request.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Callable

NODE_DIR_ENV = "KUMOCORE_NODE_DIR"
#: Set on requests between workers: the rule id the asking worker assigned, so a rule has
#: one id across the node and can be listed or cancelled through any worker.
RULE_ID_HEADER = "X-Kumocore-Rule-Id"
#: On a fanned-out answer: how many workers answered, of how many ("2/2").
ANSWERED_HEADER = "X-Kumocore-Workers"
#: Marks the app served on a worker's private socket (requests from its peers).
PEER_APP_KEY: web.AppKey[bool] = web.AppKey("kumocore.peer_app", bool)
PEER_TIMEOUT = 10.0


def socket_path(node_dir: str | Path, index: int) -> Path:
    return Path(node_dir) / f"worker-{index}.sock"


@dataclass(frozen=True)
class PeerAnswer:
    """One worker's answer: ``status`` 0 when it could not be reached."""

    index: int
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class NodePeers:
    """This worker's view of the node: its index, the count, and how to reach the others."""

    node_dir: Path
    index: int
    count: int
    _runner: web.AppRunner | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, index: int, count: int) -> NodePeers | None:
        node_dir = os.environ.get(NODE_DIR_ENV)
        if not node_dir or count < 2:
            return None
        return cls(Path(node_dir), index, count)

    async def serve(self, add_routes: Callable[[web.Application], None]) -> None:
        """Serve this worker's admin endpoints (``add_routes`` adds them) on its private
        socket."""
        app = web.Application()
        app[PEER_APP_KEY] = True
        add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        path = socket_path(self.node_dir, self.index)
        path.unlink(missing_ok=True)  # left by this worker's previous life
        await web.UnixSite(self._runner, str(path)).start()
        os.chmod(path, 0o600)

    async def ask_others(self, method: str, path_qs: str, body: bytes,
                         headers: dict[str, str]) -> list[PeerAnswer]:  # fmt: skip
        """The same request to every other worker, concurrently; unreachable ones say 0."""
        others = [k for k in range(self.count) if k != self.index]
        return list(await asyncio.gather(
            *(self._ask(k, method, path_qs, body, headers) for k in others)))

    async def _ask(self, index: int, method: str, path_qs: str, body: bytes,
                   headers: dict[str, str]) -> PeerAnswer:  # fmt: skip
        connector = aiohttp.UnixConnector(path=str(socket_path(self.node_dir, index)))
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
        url = f"http://worker{path_qs}"
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.request(method, url, data=body or None, headers=headers) as response,
            ):
                return PeerAnswer(index, response.status, await response.read(),
                                  response.content_type)  # fmt: skip
        except (aiohttp.ClientError, OSError, TimeoutError):
            return PeerAnswer(index, 0, b"")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        socket_path(self.node_dir, self.index).unlink(missing_ok=True)


def peer_rule_id(request: web.Request) -> str | None:
    """The node-wide rule id a peer passed along, honoured only on the private socket."""
    if not request.app.get(PEER_APP_KEY, False):
        return None
    return request.headers.get(RULE_ID_HEADER) or None


async def tell_other_workers(peers: NodePeers | None, method: str, path: str,
                             body: dict[str, Any], rule_id: str | None = None) -> bool:  # fmt: skip
    """Ask every other worker of ``serve --workers N`` the admin request a policy function
    made here (under the same rule id); True if any answered 200."""
    if peers is None:
        return False
    headers = {"Content-Type": "application/json"}
    if rule_id is not None:
        headers[RULE_ID_HEADER] = rule_id
    answers = await peers.ask_others(method, path, json.dumps(body).encode(), headers)
    return any(answer.status == 200 for answer in answers)


def answered(local_ok: bool, answers: list[PeerAnswer]) -> str:
    reached = int(local_ok) + sum(1 for a in answers if a.status)
    return f"{reached}/{len(answers) + 1}"

