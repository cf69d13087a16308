"""SMTP wire details for the client: reading (multi-line) replies (bodies are dot-stuffed
by :mod:`kumocore.delivery.dot_stuffing`).

A reply is bounded: at most :data:`MAX_REPLY_LINE` bytes per line (KumoMTA's limit) and
:data:`MAX_REPLY_LINES` lines, all within the command's timeout. Anything else the MX
sends — an over-long or endless reply, a line that is not ``NNN[ -]text`` (the code's
first digit 2 to 5), a continuation line with another code — is a :class:`ReplyError`:
the stream can no longer be trusted to be in step, so the client closes the connection.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import TYPE_CHECKING

from kumocore.mail.response import Response
from kumocore.node.timers import EarliestDeadline
from kumocore.trace.bus import CLIENT_TRACE

if TYPE_CHECKING:
    from collections.abc import Callable

    from kumocore.trace.events import ClientTracer

# "250" alone is a complete reply line too (RFC 5321's textstring is optional). Codes
# start with 2-5: anything else (which would otherwise count as a permanent failure) is
# a malformed reply, so garbage from the MX can defer a message but never bounce it.
_REPLY = re.compile(rb"^([2-5]\d\d)(?:([ -])(.*?))?\r?\n?$", re.S)
#: The longest reply line accepted, CRLF included (KumoMTA's client allows 4096 bytes;
#: RFC 5321 only promises 512).
MAX_REPLY_LINE = 4096
#: The most lines one (multi-line) reply may have; EHLO replies have a dozen or so.
MAX_REPLY_LINES = 100
#: Distinct replies whose parse is remembered. A server says the same few things over and
#: over (``250 2.1.0 Ok``, ``354 ...``) and a Response is immutable, so one parse is shared;
#: replies that differ each time (a queue id in the final ``250``) only cycle the memo.
REPLY_MEMO_SIZE = 512
_parse_reply = functools.lru_cache(maxsize=REPLY_MEMO_SIZE)(Response.parse)


class ReplyError(Exception):
    """The MX sent something that is not a bounded, well-formed SMTP reply."""


class WriteTimeout(TimeoutError):
    """What kumocore wrote was not taken by the MX (its receive window stayed full)
    within ``timeout`` seconds. ``commands`` names the commands being written; None
    for the message body. KumoMTA words this apart from a reply that does not come."""

    def __init__(self, commands: str | None, timeout: float) -> None:
        what = "the message body" if commands is None else commands
        super().__init__(f"could not write {what} within {timeout}s")
        self.commands = commands
        self.timeout = timeout


def refusal(reply: Response, command: str) -> Response | None:
    """None when ``reply`` accepts ``command`` (2xx), ``reply`` when it refuses it (4xx
    or 5xx); a :class:`ReplyError` for anything else (a 3xx to ``MAIL`` or ``RCPT``):
    the MX's replies are no longer in step with the commands."""
    if reply.is_success:
        return None
    return expect_reply(reply, command, None)


def expect_reply(reply: Response, command: str, wanted: int | None) -> Response:
    """``reply`` when it is ``wanted`` or a refusal (4xx or 5xx), else a
    :class:`ReplyError`: ``250`` to ``DATA`` means the MX is not about to read a body
    (RFC 5321 4.3.2 allows only ``354``), and most likely that a reply meant for an
    earlier command (one too many to EHLO or to a dot) is being read as this one's.
    Taken as an answer, it would send the body into a session that is not reading one
    and log a delivery that never happened."""
    if reply.code == wanted or reply.code >= 400:
        return reply
    raise ReplyError(f"{reply.to_single_line()[:80]!r} is no reply to {command}")


class ReplyReader:
    """Reads one SMTP reply (possibly multi-line) at a time, each within its own timeout.

    A bulk connection reads four replies per message. An ``asyncio.timeout`` per reply
    creates, schedules and cancels a timer each time; here one timer per connection is
    re-armed lazily instead (as the server side stamps activity): it only looks at the
    deadline of the read in progress, and fails that read by setting a ``TimeoutError``
    on the stream, which wakes the pending ``readuntil`` with it.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.last_extensions: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: float | None = None  # of the read in progress, if any
        self._timer = EarliestDeadline(self._check_deadline)
        self._expired = False
        self.command = "banner"  # the reply being read, or last read (for error texts)
        self.timeout = 0.0  # the wait of that read (seconds; for error texts too)
        self.tracer: ClientTracer | None = None  # the connection's, for CLIENT_TRACE
        #: Called as each reply is awaited: the connection's progress mark for the
        #: dispatcher progress watchdog (kumocore.queue.watchdog), if it has one.
        self.progress: Callable[[], None] | None = None

    def reset(self) -> None:
        """Forget what the pre-TLS session said (after STARTTLS, nothing may be trusted)."""
        self.last_extensions = {}

    def buffered(self) -> int:
        """Bytes received but not yet read as a reply.

        After the ``220`` to STARTTLS there must be none: bytes that came with or after
        it were sent in plaintext, and reading them later as if they came over TLS is
        the response injection of CVE-2011-0411.
        """
        buffer = getattr(self.reader, "_buffer", b"")  # StreamReader has no public peek
        return len(buffer)

    def close(self) -> None:
        """The connection is gone: drop the timer (it would keep this reader alive)."""
        self._timer.cancel()

    async def read(self, command: str, timeout: float) -> Response:
        """The next reply; ``TimeoutError`` if it is not complete within ``timeout``,
        :class:`ReplyError` if what came is not a bounded, well-formed reply."""
        self.command = command
        self.timeout = timeout
        if self.progress is not None:
            self.progress()
        self._arm(timeout)
        try:
            lines, code = await self._read_lines()
        finally:
            self._deadline = None
        if self._expired:  # the deadline passed just as the reply arrived: still too late
            raise TimeoutError(f"no {command} reply within {timeout}s")
        if command in ("EHLO", "LHLO"):  # LHLO: use_lmtp
            self.last_extensions = _extensions(lines[1:])
        return _parse_reply(code, " ".join(lines) if len(lines) > 1 else lines[0], command)

    async def _read_lines(self) -> tuple[list[str], int]:
        """The reply's text lines and code; :class:`ReplyError` if it is not one."""
        lines: list[str] = []
        code = 0
        for _ in range(MAX_REPLY_LINES):
            raw = await self._read_line()
            match = _REPLY.match(raw)
            if match is None:
                raise ReplyError(f"malformed reply: {raw[:80]!r}")
            if code and int(match[1]) != code:
                raise ReplyError(f"malformed reply: code {match[1].decode()} within a {code}")
            code = int(match[1])
            lines.append((match[3] or b"").decode("utf-8", "replace"))
            if match[2] != b"-":
                return lines, code
        raise ReplyError(f"reply of more than {MAX_REPLY_LINES} lines")

    async def _read_line(self) -> bytes:
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:  # beyond the stream's own limit
            raise ReplyError(f"reply line longer than {MAX_REPLY_LINE} bytes") from exc
        except asyncio.IncompleteReadError as exc:
            if self._expired:  # the end-of-stream of _check_deadline, not the peer's
                raise TimeoutError(f"no {self.command} reply in time") from exc
            if exc.partial:
                raise ConnectionResetError(
                    f"connection closed in the middle of a reply line: {exc.partial[:80]!r}"
                ) from exc
            raise ConnectionResetError("connection closed by the MX") from exc
        if CLIENT_TRACE.active and self.tracer is not None:
            self.tracer.read(raw)
        if len(raw) > MAX_REPLY_LINE:
            raise ReplyError(f"reply line longer than {MAX_REPLY_LINE} bytes")
        return raw

    def _arm(self, timeout: float) -> None:
        if self._expired:  # the stream holds our TimeoutError: every later read fails
            raise TimeoutError("an earlier reply timed out")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = self._deadline = loop.time() + timeout
        # An earlier timer is fine: it re-arms itself for this deadline when it fires.
        self._timer.arm(loop, deadline)

    def _check_deadline(self) -> None:
        assert self._loop is not None
        deadline = self._deadline
        if deadline is None:  # no read in progress: the next one arms the timer again
            return
        if self._loop.time() < deadline:
            self._timer.arm(self._loop, deadline)
            return
        self._expired = True
        self.reader.set_exception(TimeoutError("SMTP reply timed out"))
        # set_exception reaches only a read that is waiting. When a byte arrived in the
        # same tick, StreamReader.readuntil has been woken already and goes on waiting for
        # the rest of the line without looking at the exception again: a peer dripping one
        # byte a second held the read (and the connection) until its line was complete. At
        # end-of-stream readuntil stops on its next check, whatever woke it.
        self.reader.feed_eof()


def _extensions(lines: list[str]) -> dict[str, str]:
    extensions = {}
    for line in lines:
        keyword, _, params = line.partition(" ")
        extensions[keyword.upper()] = params
    return extensions
