"""The local-logs :class:`~kumocore.logs.LogSink`: JSON lines into zstd segments.

Encoding and compression run on one worker thread per sink, so the event loop only hands
batches over; the thread also serialises every segment operation (writes, rotation on
``max_segment_duration``, close) without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog

from kumocore.logs import LogRecord
from kumocore_local_logs.options import LocalLogsConfig
from kumocore_local_logs.segment import SegmentKey, SegmentSet

T = TypeVar("T")
log = structlog.get_logger("kumocore.local_logs")


class LocalLogSink:
    """Writes every record to ``log_dir`` (or its ``per_record`` directory/suffix)."""

    def __init__(self, config: LocalLogsConfig) -> None:
        self.config = config
        self.name = f"local_logs:{config.log_dir}"
        #: The ``logger`` label on /metrics, as KumoMTA names a local logger.
        self.logger_name = f"dir-{config.log_dir}"
        # Optional sink attributes read by the dispatcher (see kumocore.logs.sink).
        self.header_names: tuple[str, ...] = config.headers
        self.buffer_size: int = config.back_pressure
        #: The policy event deciding per message whether it is logged here. The dispatcher
        #: asks it on the event loop, before a batch reaches this sink's writer thread
        #: (kumocore.logs.filter_event), and only for types :meth:`record_enabled` allows.
        self.filter_event = config.filter_event
        self._files = SegmentSet(config)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kumocore-local-logs")
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._expiring: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Create the log directories and mark a previous run's segments done.

        Not done when the policy is merely loaded (``kumocore validate`` on a live host must
        not finish the running server's segments), but when the server starts serving.
        """
        self._files.prepare()

    def record_enabled(self, record_type: str) -> bool:
        """Whether records of this type are written here at all (``per_record.enable``)."""
        route = self.config.route(record_type)
        return route is None or route.enable

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        deadline = await self._run(self._write, list(records))
        self._schedule_expiry(deadline)

    def _write(self, records: list[LogRecord]) -> float | None:
        config, items = self.config, []
        for record in records:
            route = config.route(record.type)
            key: SegmentKey = (config.log_dir, "")
            if route is not None:
                if not route.enable:
                    continue
                key = (route.log_dir or config.log_dir, route.suffix)
            line = record.to_json_bytes(config.meta, config.headers) + b"\n"
            items.append((key, line))
        return self._files.write(items)

    async def close(self) -> None:
        """Finish every open segment (ending its zstd frame, marking it read-only)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._expiring is not None:
            with contextlib.suppress(Exception):
                await self._expiring
        try:
            await self._run(self._files.close)
        finally:
            self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _schedule_expiry(self, deadline: float | None) -> None:
        # A segment must rotate when max_segment_duration passes even if no record comes
        # along to notice, so keep one timer armed for the earliest deadline.
        if deadline is None or self._closed or deadline >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, deadline - time.monotonic())
        self._timer_at = deadline
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        if not self._closed:
            self._expiring = asyncio.get_running_loop().create_task(self._expire())

    async def _expire(self) -> None:
        try:
            deadline = await self._run(self._files.expire)
        except Exception as exc:  # nobody awaits this task: report here, retry next batch
            log.error("could not finish an expired log segment", sink=self.name, error=repr(exc))
            return
        self._schedule_expiry(deadline)
