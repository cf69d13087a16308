"""Throttles and connection limits shared by the workers of one node, without Redis.

With ``serve --workers N`` each worker is its own process, so an in-process store would
let a ``connection_limit = 10`` open 10 connections *per worker*. Instead the supervisor
keeps the one :class:`~kumocore.throttle.local.LocalThrottleStore` of the node and serves
it on a Unix socket in the node directory (:class:`NodeThrottleServer`, in a thread of
its own); each worker uses it through :class:`NodeThrottleStore`. A configured shared
store (Redis) still takes precedence: it already holds across workers and nodes.

The protocol is one JSON object per line each way, answered in order; a worker
pipelines its requests over one connection. When a worker's connection closes (it
exited or was killed), the server releases the leases it held at once rather than
waiting for them to lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import structlog

from kumocore.throttle.local import LocalThrottleStore
from kumocore.throttle.spec import ThrottleSpec
from kumocore.throttle.store import Lease, LeaseLostError, ThrottleResult

log = structlog.get_logger("kumocore.throttle")

SOCKET_NAME = "throttle.sock"
#: A worker waits this long for an answer before treating the store as failed.
CALL_TIMEOUT = 5.0


def socket_path(node_dir: str | Path) -> Path:
    return Path(node_dir) / SOCKET_NAME


# ----------------------------------------------------------------------------- server


class NodeThrottleServer:
    """The node's throttle state, served from the supervisor (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = LocalThrottleStore()
        self._specs: dict[tuple[int, int, int | None], ThrottleSpec] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-throttles", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError(f"the node throttle store did not start at {self.path}")

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(5.0)
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        self.path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self._client, str(self.path))
        os.chmod(self.path, 0o600)
        self._ready.set()
        async with server:
            await self._stopped.wait()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: dict[str, Lease] = {}  # this worker's leases, released if it goes away
        try:
            while line := await reader.readline():
                request = orjson.loads(line)
                answer = await self._answer(request, held)
                writer.write(orjson.dumps({"id": request["id"], **answer}) + b"\n")
        except (ConnectionError, ValueError, KeyError, TypeError, IndexError) as exc:
            # Only this node's workers can reach the socket (mode 0600), but a request of
            # the wrong shape or a line past the reader's limit (ValueError) ends that
            # connection alone, its leases released, rather than escaping the handler.
            log.warning("node throttle client dropped", error=str(exc)[:200])
        finally:
            for lease in held.values():
                await self.store.release_lease(lease)
            writer.close()

    async def _answer(self, request: dict[str, Any], held: dict[str, Lease]) -> dict[str, Any]:
        op = request["op"]
        if op == "throttle":
            spec = self._spec(request["spec"])
            result = await self.store.throttle(request["key"], spec, request["quantity"])
            retry = None if math.isinf(result.retry_after) else result.retry_after
            return {"result": [result.throttled, result.remaining, result.reset_after, retry]}
        if op == "acquire":
            lease = await self.store.acquire_lease(
                request["key"], request["limit"], request["duration"])
            if lease is None:
                return {"token": None}
            held[lease.token] = lease
            return {"token": lease.token}
        if op == "wanted":
            return {"wanted": await self.store.lease_wanted(request["key"])}
        lease = held.get(request["token"]) or Lease(request["key"], request["token"], 0.0)
        if op == "renew":
            try:
                await self.store.renew_lease(lease, request["duration"])
            except LeaseLostError:
                held.pop(lease.token, None)
                return {"lost": True}
            return {"lost": False}
        if op == "release":
            held.pop(lease.token, None)
            await self.store.release_lease(lease)
            return {}
        return {"error": f"unknown operation {op!r}"}

    def _spec(self, fields: list[Any]) -> ThrottleSpec:
        key = (int(fields[0]), int(fields[1]), None if fields[2] is None else int(fields[2]))
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = ThrottleSpec(*key)
        return spec


# ----------------------------------------------------------------------------- client


class NodeThrottleStore:
    """A worker's view of the node's throttle store (implements ``ThrottleStore``)."""

    name = "node"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()

    async def throttle(self, key: str, spec: ThrottleSpec, quantity: int = 1) -> ThrottleResult:
        answer = await self._call({"op": "throttle", "key": key, "quantity": quantity,
                                   "spec": [spec.limit, spec.period, spec.max_burst]})  # fmt: skip
        throttled, remaining, reset_after, retry = answer["result"]
        return ThrottleResult(throttled, remaining, reset_after,
                              math.inf if retry is None else retry)  # fmt: skip

    async def acquire_lease(self, key: str, limit: int, duration: float) -> Lease | None:
        answer = await self._call({"op": "acquire", "key": key, "limit": limit,
                                   "duration": duration})  # fmt: skip
        token = answer["token"]
        if token is None:
            return None
        return Lease(key, token, time.monotonic() + duration, self.name)

    async def renew_lease(self, lease: Lease, duration: float) -> None:
        answer = await self._call({"op": "renew", "key": lease.key, "token": lease.token,
                                   "duration": duration})  # fmt: skip
        if answer["lost"]:
            raise LeaseLostError(lease)
        lease.expires = time.monotonic() + duration

    async def release_lease(self, lease: Lease) -> None:
        await self._call({"op": "release", "key": lease.key, "token": lease.token})

    async def lease_wanted(self, key: str) -> bool:
        """Whether another worker was just refused a unit of ``key`` (see LocalThrottleStore)."""
        answer = await self._call({"op": "wanted", "key": key})
        return bool(answer.get("wanted"))

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        if self._writer is not None:
            self._writer.close()
        self._writer = self._reading = None

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        writer = await self._connection()
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        writer.write(orjson.dumps({"id": request_id, **request}) + b"\n")
        try:
            return await asyncio.wait_for(future, CALL_TIMEOUT)
        finally:
            self._pending.pop(request_id, None)

    async def _connection(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                reader, self._writer = await asyncio.open_unix_connection(str(self.path))
                self._reading = asyncio.create_task(self._read(reader))
            return self._writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                answer = orjson.loads(line)
                future = self._pending.get(answer["id"])
                if future is not None and not future.done():
                    future.set_result(answer)
        finally:
            # The supervisor went away: fail what waits; the next call reconnects.
            if self._writer is not None:
                self._writer.close()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the node throttle store went away"))
