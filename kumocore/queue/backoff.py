"""An egress path's pause after failed connections (no hot reconnect loop).

A connection that fails — the session breaks without a reply (reset, timeout, protocol
violation, TLS error), or it cannot be opened or greeted more than
``consecutive_connection_failures_before_delay`` times in a row (see
:mod:`kumocore.queue.session`) — pauses the whole path:
:data:`CONNECT_BACKOFF_FIRST` seconds, doubling with each consecutive failure up to
:data:`CONNECT_BACKOFF_MAX`. While failures are counted, the ready queue opens a single
probe connection at a time; one transaction that gets a reply (any reply) ends it. So a
hostile or broken MX costs a few connections a minute, however much mail is queued.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from kumocore.mail.response import Response

log = structlog.get_logger("kumocore.ready")

#: The path's pause after its first failed connection; it doubles with each consecutive
#: failure, up to CONNECT_BACKOFF_MAX.
CONNECT_BACKOFF_FIRST = 1.0
CONNECT_BACKOFF_MAX = 60.0


class PathBackoff:
    """Consecutive connection failures of one path and the pause they impose."""

    def __init__(self, path_name: str) -> None:
        self.path_name = path_name
        self.failures = 0
        # Bumped by each counted failure: connections opened before it (a burst that
        # fails together) count as one failure, not one each.
        self.epoch = 0
        self.until = 0.0  # time.monotonic() before which no connection opens
        self._timer: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        return self.until > time.monotonic()

    def failed(self, response: Response, epoch: int | None = None) -> None:
        """A connection opened in failure ``epoch`` failed: pause, longer each time."""
        if epoch is not None and epoch != self.epoch:
            return  # it failed together with one already counted
        self.epoch += 1
        self.failures += 1
        delay = min(CONNECT_BACKOFF_FIRST * 2 ** min(self.failures - 1, 16), CONNECT_BACKOFF_MAX)
        self.until = max(self.until, time.monotonic() + delay)
        log.warning(
            "connection failed; egress path backs off",
            path=self.path_name,
            failures=self.failures,
            seconds=delay,
            response=response.to_single_line(),
        )

    def worked(self) -> None:
        """A transaction got a reply: the MX works, connections open freely again."""
        self.failures = 0

    def call_when_over(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the pause is over (one timer, however often asked)."""
        if self._timer is None:
            delay = max(self.until - time.monotonic(), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._over, callback)

    def _over(self, callback: Callable[[], None]) -> None:
        self._timer = None
        callback()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
