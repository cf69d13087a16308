"""Connection limits and timeouts of one HTTP listener (issue 14, finding 4).

aiohttp on its own keeps a connection open for as long as the client sends a byte now and
then: there is no deadline for the request headers, so slow ("slowloris") and silent
clients can pile up until the process runs out of file descriptors, and then the SMTP
listener and the spool fail too. :class:`ConnectionGuard` sits between the socket and
aiohttp's request handler (a thin protocol wrapper, so only public aiohttp API is used):

* ``max_connections`` / ``max_connections_per_peer``: a connection beyond either cap gets
  ``503`` with a JSON error and is closed before aiohttp sees it; the last
  :data:`RESERVED_FOR_TRUSTED` (at most an eighth) of ``max_connections`` are kept for
  peers in ``trusted_hosts``;
* ``max_connection_rate_per_peer`` (off unless set): a client (not in ``trusted_hosts``)
  opening connections faster gets ``429`` the same way;
* ``header_timeout``: from the connection's first byte (or the first byte after an idle
  keep-alive pause) to the end of the request headers; a client still sending headers then
  gets ``408`` and is closed;
* ``keepalive_timeout``: how long a connection may sit idle between requests (and before
  its first one) before it is closed;
* ``response_write_timeout``: while writing is paused because the client does not read
  the response, it must take some of it at least this often, else the connection is
  aborted without a reply (:mod:`kumocore.http.write_progress`). Such a connection is not
  idle either: aiohttp writes a ``web.Response`` after its handler returned, when
  ``keepalive_timeout`` already runs.

The body deadline (``request_body_timeout``) is applied where the body is read, in
:mod:`kumocore.http.guard`, which tells the guard when a request starts and ends through
:meth:`ConnectionGuard.begin` / :meth:`ConnectionGuard.end`.

TLS (``use_tls``) is started by the guard, after a connection was admitted, and its
handshake must end within ``header_timeout``. A server made with ``ssl=`` would shake
hands before the guard ever saw the connection: 6,000 connections that never sent a
ClientHello were all accepted by a listener capped at 200, about 3,000 descriptors and
110 MiB more per worker, for as long as the handshake timeout, so the caps meant to keep
half the descriptors for SMTP and the spool did not hold. A connection over a cap is
closed without a reply when the listener speaks TLS (a plain-text ``503`` would be
noise to a TLS client, and answering in TLS would cost the handshake the cap avoids).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import orjson

from kumocore.http.write_progress import WriteProgress, kernel_unsent, reset
from kumocore.reception.client_net import client_net
from kumocore.reception.connection_rates import ConnectionRates

if TYPE_CHECKING:
    from kumocore.throttle.spec import ThrottleSpec

__all__ = ["ConnectionGuard", "GuardedProtocol", "connection_cap", "raw_json_response"]

#: Share of the process's descriptor limit one HTTP listener may use at most, so that the
#: SMTP listeners, the spool and the logs always keep the rest.
FD_SHARE = 0.5
#: Connections only peers in ``trusted_hosts`` may take (fewer when ``max_connections`` is
#: small: at most an eighth of it), so that many untrusted addresses cannot lock out the
#: operator's liveness checks and admin calls by holding every connection.
RESERVED_FOR_TRUSTED = 64


def connection_cap(configured: int, fd_soft_limit: int | None = None) -> int:
    """``max_connections``, lowered to :data:`FD_SHARE` of ``RLIMIT_NOFILE`` if above it."""
    if fd_soft_limit is None:
        import resource

        fd_soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if fd_soft_limit == resource.RLIM_INFINITY:
            return configured
    return max(1, min(configured, int(fd_soft_limit * FD_SHARE)))


def raw_json_response(status: int, reason: str, error: str) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response, written before aiohttp runs."""
    body = orjson.dumps({"error": error})
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


class GuardedProtocol(asyncio.Protocol):
    """One connection: forwards everything to aiohttp's handler, enforcing the deadlines."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        #: The socket's own transport: ``transport`` until TLS starts, then the one under it.
        self.raw: asyncio.Transport | None = None
        self.peer = ""
        self.trusted = False  # set by ConnectionGuard.admit
        self.admitted = False
        #: aiohttp's handler has the connection (after the TLS handshake, with TLS).
        self.started = False
        self.handshake: asyncio.Task[None] | None = None
        #: What TLS decrypted before the handshake's task resumed (the client's first
        #: request may come with its last handshake flight), replayed by :meth:`_start`.
        self._early: list[bytes] = []
        self.in_request = False
        self.receiving_headers = False
        self._timer: asyncio.TimerHandle | None = None
        #: Its own timer: the header and idle deadlines of ``_timer`` run at the same time.
        self.writing = WriteProgress(
            guard.response_write_timeout, self._unsent_bytes, self._stopped_reading)

    # -------------------------------------------------------------- asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        self.transport = self.raw = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else ""
        refusal = self.guard.admit(self)
        if refusal is not None:
            if self.guard.tls is None:
                self.transport.write(raw_json_response(*refusal))
            self._close()
            return
        self.admitted = True
        if self.guard.tls is None:
            self._start(self.transport)
        else:
            # The ClientHello must wait in the socket for the TLS layer: read now, it would
            # reach this protocol before the task below starts.
            self.transport.pause_reading()
            self.handshake = asyncio.get_running_loop().create_task(
                self._shake_hands(self.transport, self.guard.tls))

    async def _shake_hands(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        """TLS over the admitted connection, then aiohttp's handler over TLS."""
        try:
            secured = await asyncio.get_running_loop().start_tls(
                raw, self, context, server_side=True,
                ssl_handshake_timeout=self.guard.header_timeout)
        except Exception:  # a failed, timed-out or abandoned handshake: the peer's doing
            self.guard.failed_handshakes += 1
            _abort(raw)
            self._release()
            return
        finally:
            self.handshake = None
        if not self.admitted or secured is None:  # lost the moment the handshake ended
            return
        self._start(secured)

    def _start(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.started = True
        self.inner.connection_made(transport)
        self._arm(self.guard.keepalive_timeout, self._idle_expired)
        early, self._early = self._early, []
        for data in early:
            if not self.started:
                break
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if not self.started:
            if self.admitted:  # decrypted before the handshake's task resumed: at most a
                self._early.append(data)  # read's worth, as the task is due this turn
            return
        if not self.in_request and not self.receiving_headers:
            self.receiving_headers = True
            self._arm(self.guard.header_timeout, self._headers_expired)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.started else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.writing.resumed()
        started = self.started
        self._release()
        if started:
            self.inner.connection_lost(exc)

    def _release(self) -> None:
        """Give the connection's place back, once (a failed handshake, or the loss)."""
        self.started = False
        if self.admitted:
            self.admitted = False
            self.guard.release(self)

    def pause_writing(self) -> None:
        if self.started:
            self.writing.paused()
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.writing.resumed()
        if self.started:
            self.inner.resume_writing()

    # -------------------------------------------------------------- request lifecycle
    def begin(self) -> None:
        """The request's headers are in: their deadline no longer applies."""
        self.in_request = True
        self.receiving_headers = False
        self._cancel()

    def end(self) -> None:
        """The request was answered: the connection is idle until its next byte."""
        self.in_request = False
        self.receiving_headers = False
        if self.transport is not None and not self.transport.is_closing():
            self._arm(self.guard.keepalive_timeout, self._idle_expired)

    # -------------------------------------------------------------- deadlines
    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, callback)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_expired(self) -> None:
        self._timer = None
        if self.writing.watching:
            # Writing is paused: a response is still going out, under
            # response_write_timeout (aiohttp writes the one a handler returned after
            # end() armed this deadline). Not idle.
            self._arm(self.guard.keepalive_timeout, self._idle_expired)
            return
        self.guard.closed_idle += 1
        self._close()

    def _headers_expired(self) -> None:
        self._timer = None
        if self.in_request:
            return
        self.guard.closed_slow_headers += 1
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(raw_json_response(
                408, "Request Timeout",
                f"request headers not received within {self.guard.header_timeout:g}s "
                "(header_timeout)"))
        self._close()

    def _unsent_bytes(self) -> int:
        """What the transports (TLS's and the socket's) and the kernel still hold."""
        raw = self.raw
        if raw is None:
            return 0
        unsent = raw.get_write_buffer_size() + kernel_unsent(raw)
        if self.transport is not None and self.transport is not raw:
            # With TLS, what its layer holds too; asking fails once the TLS transport
            # was closed twice (it forgets its layer), and then there is nothing to add.
            with contextlib.suppress(Exception):
                unsent += self.transport.get_write_buffer_size()
        return unsent

    def _stopped_reading(self) -> None:
        self.guard.closed_slow_readers += 1
        if self.raw is not None:
            reset(self.raw)  # drops the unsent response; the handler's drain ends

    def _close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.close()  # flushes what was written (the 408), then closes
        # ... unless the client stopped reading: then the socket goes anyway, a moment later.
        # The socket's transport: a TLS transport closed again (aiohttp closes an idle
        # connection too) forgets its TLS layer, and its abort() then does nothing.
        asyncio.get_running_loop().call_later(LINGER, _abort, self.raw or transport)


#: How a connection is refused: HTTP status, reason phrase, the JSON error's text.
Refusal = tuple[int, str, str]

#: Seconds a closing connection may take to flush its last bytes before it is aborted.
LINGER = 1.0


def _abort(transport: asyncio.Transport) -> None:
    with contextlib.suppress(Exception):
        transport.abort()


class ConnectionGuard:
    """The caps and deadlines shared by every connection of one listener."""

    def __init__(
        self,
        inner_factory: Callable[[], asyncio.Protocol],
        *,
        max_connections: int,
        max_per_peer: int,
        header_timeout: float,
        keepalive_timeout: float,
        response_write_timeout: float = 30.0,
        trusted: Callable[[str], bool] = lambda peer: False,
        tls: ssl.SSLContext | None = None,
        rate: ThrottleSpec | None = None,
    ) -> None:
        self.inner_factory = inner_factory
        #: ``max_connection_rate_per_peer``, and the clients' buckets.
        self.rate = rate
        self.rates = ConnectionRates()
        #: The listener's TLS context: each admitted connection shakes hands with it.
        self.tls = tls
        self.max_connections = max_connections
        self.trusted = trusted
        # The last slots are kept for trusted hosts: peers that may not call a single
        # endpoint could otherwise hold every connection (reconnecting as each idles out)
        # and lock the operator's own liveness checks and admin calls out.
        self.reserved = min(RESERVED_FOR_TRUSTED, max_connections // 8)
        self.open_untrusted = 0
        self.max_per_peer = max_per_peer
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.response_write_timeout = response_write_timeout
        self.open = 0
        self.per_peer: collections.Counter[str] = collections.Counter()
        self.by_handler: dict[Any, GuardedProtocol] = {}
        self.refused = 0
        self.closed_idle = 0
        self.closed_slow_headers = 0
        self.closed_slow_readers = 0
        self.failed_handshakes = 0

    def __call__(self) -> GuardedProtocol:
        """The protocol factory handed to ``loop.create_server``."""
        return GuardedProtocol(self, self.inner_factory())

    def admit(self, conn: GuardedProtocol) -> Refusal | None:
        """None when ``conn`` may proceed, else the answer that refuses it."""
        conn.trusted = self.trusted(conn.peer)
        if self.open >= self.max_connections or (
                not conn.trusted
                and self.open_untrusted >= self.max_connections - self.reserved):
            self.refused += 1
            return (503, "Service Unavailable", "too many connections to this listener "
                    f"(max_connections {self.max_connections})")
        if self.per_peer[client_net(conn.peer)] >= self.max_per_peer:
            self.refused += 1
            return (503, "Service Unavailable", f"too many connections from {conn.peer} "
                    f"(max_connections_per_peer {self.max_per_peer})")
        if (self.rate is not None and not conn.trusted
                and not self.rates.admit(conn.peer, self.rate)):
            self.refused += 1
            return (429, "Too Many Requests", f"too many connections from {conn.peer} "
                    f"(max_connection_rate_per_peer {self.rate})")
        self.open += 1
        self.open_untrusted += not conn.trusted
        self.per_peer[client_net(conn.peer)] += 1
        self.by_handler[conn.inner] = conn
        return None

    def release(self, conn: GuardedProtocol) -> None:
        self.open -= 1
        self.open_untrusted -= not conn.trusted
        net = client_net(conn.peer)  # an IPv6 /64 is one client
        self.per_peer[net] -= 1
        if self.per_peer[net] <= 0:
            del self.per_peer[net]
        self.by_handler.pop(conn.inner, None)

    def connection_of(self, handler: Any) -> GuardedProtocol | None:
        """The guarded connection whose aiohttp handler is ``handler`` (request.protocol)."""
        return self.by_handler.get(handler)

    def stats(self) -> dict[str, int]:
        return {"open": self.open, "refused": self.refused, "closed_idle": self.closed_idle,
                "closed_slow_headers": self.closed_slow_headers,
                "closed_slow_readers": self.closed_slow_readers,
                "failed_handshakes": self.failed_handshakes}
