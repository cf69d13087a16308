"""``kumo.aaa.configure_acct_log {...}``: the accounting log of authentication and
authorization events, as KumoMTA writes it.

One JSON object per line, in zstd-compressed segments under ``log_dir`` named as
KumoMTA's (``acct-YYYYMMDD-HHMMSS.<fraction>``, UTC; a ``--workers`` worker adds
``-w<k>``: :mod:`kumocore.http.acct_segments`). Records: ``{"type": "Authentication",
timestamp, attempted_identity, success, auth_info}`` for each checked credential and
``{"type": "Authorization", timestamp, target_resource, privilege, access,
matching_resource, rule, auth_info, considered_resources}`` for each access check (cached
decisions too, as KumoMTA). ``log_authn_ok``, ``log_authn_fail``, ``log_authz_allow``,
``log_authz_deny`` (default true) select them.

Lines are queued and written by a background task in a thread into a
:class:`~kumocore.logs.zstd_segment.ZstdSegmentWriter`, a block flushed after each batch
so a reader of the open segment sees them. As KumoMTA, a segment is finished (its frame
ended, the file marked done: read-only) after the record that reaches
``max_file_size`` or once ``max_segment_duration`` has passed, even when no record comes;
before its first segment the writer marks done the leftovers of a previous run that are
its own. Unlike KumoMTA, which never counts the bytes it writes here (its segments grow
without bound whatever ``max_file_size`` says), kumocore counts them: the option does
what KumoMTA documents. The open segment is also finished at interpreter exit.

At most ``back_pressure`` lines wait; beyond that new ones are dropped and counted
(``dropped``) rather than holding requests (KumoMTA makes the request wait).
``min_free_space``/``min_free_inodes`` are accepted and not enforced. A failed write is
logged, its segment finished, and the next batch starts a new one (KumoMTA logs and goes on).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import structlog

from kumocore.auth_info import AclAuthInfo, Identity
from kumocore.errors import ConfigError
from kumocore.http.acct_segments import Worker, mark_leftovers_done, open_segment
from kumocore.logs.timestamps import rfc3339
from kumocore.logs.zstd_segment import ZstdSegmentWriter
from kumocore.node.fsmode import private_dir

log = structlog.get_logger("kumocore.http.acct")

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
        # Read now, not at the first record: the policy is loaded in the worker itself.
        self.worker = Worker.from_env()
        self.queue: list[bytes] = []
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._started = False  # leftovers marked done (once, before the first segment)
        self._segment: ZstdSegmentWriter | None = None
        self._expires: float | None = None

    def wants(self, kind: str) -> bool:
        return bool(self.enabled[kind])

    def authentication(self, attempted: Identity, success: bool, info: AclAuthInfo) -> None:
        """An ``Authentication`` record (when the log wants it): who tried, whether it
        worked, and the session's AuthInfo after the attempt. HTTP and SMTP AUTH alike."""
        if self.wants("log_authn_ok" if success else "log_authn_fail"):
            self.submit({"type": "Authentication", "timestamp": timestamp(),
                         "attempted_identity": attempted.to_dict(), "success": success,
                         "auth_info": info.to_dict()})

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
            await self._wait()
            self._wake.clear()
            batch, self.queue = self.queue, []
            self._busy = True
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception as exc:  # the log goes on, as KumoMTA's (which logs and continues)
                log.error("accounting log write failed", error=repr(exc), batch=len(batch))
                await asyncio.to_thread(self._abandon)
            finally:
                self._busy = False

    async def _wait(self) -> None:
        """Until a record comes or the open segment's ``max_segment_duration`` passes."""
        if self._expires is None:
            await self._wake.wait()
            return
        timeout = max(0.0, self._expires - time.monotonic())
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    def _write(self, lines: list[bytes]) -> None:
        if not self._started:
            # KumoMTA does this when its writer starts; kumocore's starts with the first
            # record, so that `kumocore validate` never touches a live node's segments.
            self._started = True
            mark_leftovers_done(self.log_dir, self.worker)
        if self._segment is not None and self._expired():
            self.close()
        for line in lines:
            if self._segment is None:
                self._segment = self._open()
            self._segment.write(line)
            # As KumoMTA: the record that reaches a bound is the segment's last.
            if self._segment.written >= self.max_file_size or self._expired():
                self.close()
        if self._segment is not None:
            self._segment.flush()

    def _expired(self) -> bool:
        return self._expires is not None and time.monotonic() >= self._expires

    def _open(self) -> ZstdSegmentWriter:
        segment = open_segment(self.log_dir, self.level, self.worker)
        duration = self.max_segment_duration
        self._expires = None if duration is None else time.monotonic() + duration
        return segment

    def close(self) -> None:
        """Finish the open segment: end its zstd frame, close it, mark it done."""
        segment, self._segment, self._expires = self._segment, None, None
        if segment is None:
            return
        try:
            segment.close()
        finally:
            segment.mark_done()

    def _abandon(self) -> None:
        try:
            self.close()
        except Exception as exc:
            log.error("accounting log segment not finished", error=repr(exc))

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
