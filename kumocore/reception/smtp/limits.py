"""What one peer may cost the listener: connections per IP, descriptors, AUTH guesses.

These are the listener-wide halves of the SMTP defences (the per-session halves — the
error and junk-command limits, the session duration cap — live in the session):

* :class:`PeerCounts` counts live connections per client, for
  ``max_connections_per_peer`` (clients in ``relay_hosts`` are exempt, as Postfix exempts
  ``$mynetworks`` from its anvil limits).
* :func:`descriptors_low` tells whether the process is close to ``RLIMIT_NOFILE``, so the
  listener refuses a connection while the spool and the logs can still open files.
* :func:`rate_refusal` charges each new connection to its client's token bucket
  (:class:`~kumocore.reception.connection_rates.ConnectionRates`), for
  ``max_connection_rate_per_peer`` (``relay_hosts`` exempt too).
* :class:`AuthFailures` remembers recent AUTH failures per client across connections, so
  a client cannot guess passwords by reconnecting after each three failures.

A client is an IPv4 address or an IPv6 /64 (:mod:`kumocore.reception.client_net`).
"""

from __future__ import annotations

import resource
import time
from collections import OrderedDict, deque
from collections.abc import Sized
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.node import shedding
from kumocore.reception.client_net import client_net
from kumocore.reception.connection_rates import MAX_TRACKED_PEERS, ConnectionRates

if TYPE_CHECKING:
    import asyncio

    from kumocore.config import EsmtpListenerConfig

__all__ = [
    "AuthFailures", "PeerCounts", "admission_refusal", "descriptor_limit", "descriptors_low",
    "rate_refusal"]

log = structlog.get_logger("kumocore.reception.smtp")



class PeerCounts:
    """Live connections per client (an IPv4 address, an IPv6 /64), by client IP."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def add(self, ip: str) -> int:
        """Count one more connection from ``ip``; its client's count including it."""
        key = client_net(ip)
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count

    def remove(self, ip: str) -> None:
        key = client_net(ip)
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def __getitem__(self, ip: str) -> int:
        return self._counts.get(client_net(ip), 0)

    def __len__(self) -> int:
        return len(self._counts)


def descriptor_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` of this process (a large number when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def descriptors_low(fd: int, limit: int, reserve: int) -> bool:
    """Whether a new connection on descriptor ``fd`` eats into the reserve.

    The kernel hands out the lowest free descriptor, so a new socket numbered ``fd``
    means descriptors ``0..fd-1`` are all in use: this costs nothing per connection,
    where counting ``/proc/self/fd`` would cost a directory scan. The reserve is capped at
    a quarter of the limit so that a small limit still leaves room for clients.
    """
    return fd >= limit - min(reserve, limit // 4)


class _Listener(Protocol):
    @property
    def config(self) -> EsmtpListenerConfig: ...
    @property
    def sessions(self) -> Sized: ...
    @property
    def peers(self) -> PeerCounts: ...
    @property
    def connection_rates(self) -> ConnectionRates: ...


class Admitting(Protocol):
    """What admission reads of a new session (a structural type: the session module
    uses this one, not the other way round)."""

    @property
    def listener(self) -> _Listener: ...
    @property
    def transport(self) -> asyncio.BaseTransport | None: ...
    @property
    def config(self) -> EsmtpListenerConfig: ...
    @property
    def peer_ip(self) -> str: ...
    @property
    def peer_address(self) -> str: ...


def admission_refusal(session: Admitting) -> str | None:
    """Why a new connection must be turned away at once (``421 4.3.2``), if it must."""
    if (reason := shedding.refusal()) is not None:  # memory or spool (kumocore.node.shedding)
        return reason
    listener = session.listener
    transport = session.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    # The limit is read each time (one cheap system call), so that raising it on a
    # running process (prlimit) takes effect at once.
    limit = descriptor_limit()
    if sock is not None and descriptors_low(
            sock.fileno(), limit, listener.config.reserved_file_descriptors):
        log.warning("refusing SMTP connection: few file descriptors left",
                    peer=session.peer_address, limit=limit)
        return "too many open files"
    if len(listener.sessions) > listener.config.max_connections:
        return "too many concurrent sessions"
    config = session.config
    if (listener.peers[session.peer_ip] > config.max_connections_per_peer
            and not config.relay_hosts.contains(session.peer_ip)):
        return f"too many connections from {session.peer_ip}"
    return None


def rate_refusal(session: Admitting) -> str | None:
    """Why a new connection is over its client's ``max_connection_rate_per_peer``
    (``421 4.7.0``), if it is; else the connection is charged to the client's bucket.

    Asked after :func:`admission_refusal`, so only a connection otherwise admitted is
    charged; before the banner, a PROXY header's client already known, and long before
    any STARTTLS handshake.
    """
    config = session.config
    spec = config.max_connection_rate_per_peer
    if spec is None or config.relay_hosts.contains(session.peer_ip):
        return None
    if session.listener.connection_rates.admit(session.peer_ip, spec):
        return None
    return (f"too many connections from {session.peer_ip} "
            f"(max_connection_rate_per_peer {spec})")


class AuthFailures:
    """AUTH failures per client (an IPv4 address, an IPv6 /64) within a sliding
    ``window`` of seconds, by client IP."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, ip: str, now: float) -> deque[float] | None:
        failures = self._failures.get(ip)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[ip]
            return None
        return failures

    def blocked(self, ip: str, now: float | None = None) -> bool:
        """Whether ``ip``'s client had ``limit`` failures within the window."""
        failures = self._recent(client_net(ip), time.monotonic() if now is None else now)
        return failures is not None and len(failures) >= self.limit

    def record(self, ip: str, now: float | None = None) -> None:
        """Remember one failure from ``ip``'s client."""
        ip = client_net(ip)
        now = time.monotonic() if now is None else now
        failures = self._recent(ip, now)
        if failures is None:
            failures = self._failures[ip] = deque(maxlen=self.limit)
        else:
            self._failures.move_to_end(ip)
        failures.append(now)
        while len(self._failures) > MAX_TRACKED_PEERS:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)
