"""Subscribing to a kumocore automation service over HTTP (``subscribe = {'http://...'}``).

The node polls the service's ``GET /api/admin/tsa/v1`` (the active actions) and applies
them; it matches nothing itself, as a KumoMTA node subscribed to a tsa-daemon does not.
"""

from __future__ import annotations

from typing import Any

from kumocore.tsa.store import ActiveAction

PATH = "/api/admin/tsa/v1"


class RemoteActionStore:
    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.label = f"http {self.url}"
        self.timeout = timeout
        self._session: Any = None

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def count_match(self, scope: str, window: float, now: float) -> int:
        raise RuntimeError("a subscriber does not record matches")

    async def put(self, action: ActiveAction) -> ActiveAction:
        raise RuntimeError("a subscriber does not record actions")

    async def active(self) -> dict[str, ActiveAction]:
        async with self._client().get(self.url + PATH) as response:
            if response.status == 404:
                raise RuntimeError(
                    f"{self.url} has no {PATH}: subscribing to a KumoMTA tsa-daemon is not "
                    "supported by kumocore yet (use a kumocore node or `kumocore tsa`)")
            response.raise_for_status()
            body = await response.json()
        actions = [ActiveAction.from_json(item) for item in body.get("actions", [])]
        return {a.id: a for a in actions if a.active}

    async def cancel(self, action_id: str) -> bool:
        async with self._client().delete(self.url + PATH, json={"id": action_id}) as response:
            return bool(response.status == 200)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
