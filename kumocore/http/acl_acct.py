"""``kumo.aaa.configure_acct_log {...}``: the accounting log of authentication and
authorization events, as KumoMTA writes it.

One JSON object per line, in zstd-compressed segments under ``log_dir`` named by their
start time (``YYYYMMDD-HHMMSS.<ns>-<pid>``, so that workers never share a file). Records:
``{"type": "Authentication", timestamp, attempted_identity, success, auth_info}`` for each
checked credential and ``{"type": "Authorization", timestamp, target_resource, privilege,
access, matching_resource, rule, auth_info, considered_resources}`` for each access check
(cached decisions too, as KumoMTA). ``log_authn_ok``, ``log_authn_fail``,
``log_authz_allow``, ``log_authz_deny`` (default true) select them.

Lines are queued and written by a background task in a thread into a
:class:`~kumocore.logs.zstd_segment.ZstdSegmentWriter`, a block flushed after each batch
so a reader of the open segment sees them; a segment ends after ``max_file_size``
uncompressed bytes or ``max_segment_duration``. At most ``back_pressure`` lines wait;
beyond that new ones are dropped and counted (``dropped``) rather than holding requests
(KumoMTA makes the request wait). ``min_free_space``/``min_free_inodes`` are accepted and
not enforced.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kumocore.errors import ConfigError
from kumocore.logs.timestamps import rfc3339
from kumocore.logs.zstd_segment import ZstdSegmentWriter
from kumocore.node.fsmode import private_dir

_BOOLS = ("log_authz_allow", "log_authz_deny", "log_authn_ok", "log_authn_fail")
_OTHERS = ("log_dir", "back_pressure", "compression_level", "max_file_size",
           "max_segment_duration", "min_free_space", "min_free_inodes")  # fmt: skip
WHO = "kumo.aaa.configure_acct_log"


def _int(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"{WHO}: {key} must be a whole number from {low} to {high}, got {value!r:.80}"
        )
    return value


class AcctLog:
    """One configured accounting log."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        from kumocore.config.duration import parse_duration

        unknown = set(options) - set(_BOOLS) - set(_OTHERS)
        if unknown:
            raise ConfigError(f"{WHO}: unknown option(s) {sorted(map(str, unknown))}")
        if not isinstance(options.get("log_dir"), str) or not options["log_dir"]:
            raise ConfigError(f"{WHO}: log_dir (a directory name) is required")
        self.log_dir = Path(options["log_dir"])
        self.enabled = {key: options.get(key, True) for key in _BOOLS}
        if not all(isinstance(v, bool) for v in self.enabled.values()):
            raise ConfigError(f"{WHO}: {', '.join(_BOOLS)} must be true or false")
        self.back_pressure = _int(options, "back_pressure", 128_000, 1, 10_000_000)
        self.level = _int(options, "compression_level", 0, 0, 21) or 3
        self.max_file_size = _int(options, "max_file_size", 1_000_000_000, 1, 2**62)
        duration = options.get("max_segment_duration")
        self.max_segment_duration = (
            None if duration is None else parse_duration(duration, key="max_segment_duration")
        )
        self.queue: list[bytes] = []
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._segment: ZstdSegmentWriter | None = None
        self._expires: float | None = None

    def wants(self, kind: str) -> bool:
        return bool(self.enabled[kind])

    def submit(self, record: Mapping[str, Any]) -> None:
        """Queue one record (dropped, and counted, beyond ``back_pressure``)."""
        if len(self.queue) >= self.back_pressure:
            self.dropped += 1
            return
        self.queue.append(orjson.dumps(record) + b"\n")
        if self._task is None:
            private_dir(self.log_dir, f"{WHO}: log_dir")
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self.queue = self.queue, []
            if batch:
                self._busy = True
                try:
                    await asyncio.to_thread(self._write, batch)
                finally:
                    self._busy = False

    def _write(self, lines: list[bytes]) -> None:
        for line in lines:
            if self._segment is not None and (
                self._segment.written >= self.max_file_size
                or (self._expires is not None and time.monotonic() >= self._expires)
            ):
                self.close()
            if self._segment is None:
                self._segment = self._open()
            self._segment.write(line)
        if self._segment is not None:
            self._segment.flush()

    def _open(self) -> ZstdSegmentWriter:
        now = time.time_ns()
        stamp = datetime.fromtimestamp(now / 1e9, UTC).strftime("%Y%m%d-%H%M%S")
        path = self.log_dir / f"{stamp}.{now % 1_000_000_000:09d}-{os.getpid()}"
        segment = ZstdSegmentWriter(path, self.level)
        self._expires = (
            None
            if self.max_segment_duration is None
            else time.monotonic() + self.max_segment_duration
        )
        return segment

    def close(self) -> None:
        """End the open segment's zstd frame and close it."""
        if self._segment is not None:
            segment, self._segment = self._segment, None
            segment.close()

    async def drain(self) -> None:
        """Wait until every queued line is written (tests, shutdown)."""
        while self.queue or self._busy or self._wake.is_set():
            await asyncio.sleep(0.01)


def timestamp() -> str:
    """Now, as a record's ``timestamp``. KumoMTA's records hold a chrono ``DateTime<Utc>``
    serialized like every other one (``SecondsFormat::AutoSi``: no fraction, 3, 6 or 9
    digits), so the one formatter of such times writes it; a float clock stops at
    microseconds where KumoMTA's has nanoseconds."""
    return rfc3339(time.time())
