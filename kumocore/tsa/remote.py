"""Subscribing to an automation service over HTTP (``subscribe = {'http://...'}``).

The node polls the service every sync interval and applies what it lists; it matches
nothing itself, as a KumoMTA node subscribed to a tsa-daemon does not. A kumocore service
(a node or ``kumocore tsa serve``) lists its actions at ``GET /api/admin/tsa/v1``; where
that is 404, the service is taken for a KumoMTA tsa-daemon and read through its
suspension and config documents (:mod:`kumocore.tsa.kumomta_daemon`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from kumocore.tsa.store import ActiveAction

PATH = "/api/admin/tsa/v1"

#: ``site_of(domain)``: the site name (MX rollup) of a domain, None when it has none.
SiteOf = Callable[[str], Awaitable[str | None]]
#: Seconds a domain's site name is kept (the service is polled every half second).
SITE_TTL = 300.0


class RemoteActionStore:
    def __init__(self, url: str, *, timeout: float = 5.0, site_of: SiteOf | None = None) -> None:
        self.url = url.rstrip("/")
        self.label = f"http {self.url}"
        self.timeout = timeout
        self._session: Any = None
        self.kumomta = False  # True once the service turned out to be a KumoMTA tsa-daemon
        self._seen: dict[str, ActiveAction] = {}
        self._site_of = site_of
        self._sites: dict[str, tuple[str | None, float]] = {}

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
        if not self.kumomta:
            async with self._client().get(self.url + PATH) as response:
                if response.status != 404:
                    response.raise_for_status()
                    body = await response.json()
                    actions = [ActiveAction.from_json(i) for i in body.get("actions", [])]
                    return {a.id: a for a in actions if a.active}
            self.kumomta = True  # no kumocore listing: a KumoMTA tsa-daemon
        return await self._kumomta_active()

    async def _kumomta_active(self) -> dict[str, ActiveAction]:
        """A KumoMTA tsa-daemon: its suspensions and its generated shaping file."""
        from kumocore.tsa.kumomta_daemon import CONFIG, SUSPENSIONS, config_overrides, suspensions

        origin = f"tsa-daemon {self.url}"
        async with self._client().get(self.url + SUSPENSIONS) as response:
            response.raise_for_status()
            actions = suspensions(await response.json(content_type=None), origin)
        async with self._client().get(self.url + CONFIG) as response:
            response.raise_for_status()
            actions += config_overrides(await response.text(), origin)
        for action in actions:
            if action.kind == "SetConfig":
                action.site_name = await self._rolled_up(action.domain)
        for action in actions:  # "since" is when this node first saw it
            known = self._seen.get(action.id)
            action.since = known.since if known is not None else action.since
        self._seen = {a.id: a for a in actions if a.active}
        return dict(self._seen)

    async def _rolled_up(self, domain: str) -> str:
        """The site a ``mx_rollup = true`` block's domain rolls up to, which is what the
        override applies to (KumoMTA's node resolves it the same way); the domain itself
        when its MX cannot be found."""
        if self._site_of is None:
            return domain
        known = self._sites.get(domain)
        if known is None or known[1] < time.monotonic():
            try:
                site = await self._site_of(domain)
            except Exception:  # no MX now: asked again after SITE_TTL
                site = None
            known = self._sites[domain] = (site, time.monotonic() + SITE_TTL)
        return known[0] or domain

    async def cancel(self, action_id: str) -> bool:
        if self.kumomta:
            return False  # KumoMTA's daemon has no cancel: its actions end when they expire
        async with self._client().delete(self.url + PATH, json={"id": action_id}) as response:
            return bool(response.status == 200)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
