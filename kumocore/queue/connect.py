"""Opening an egress path's connection: the first reachable MX address, in order.

MX targets are tried in preference order; as in KumoMTA, the addresses of the hosts of
one preference are tried in random order (a fresh order for each session), so that
connections spread over equal MX hosts, and an ``mx_list`` is tried as written (each
entry's addresses in the path's ``ip_lookup_strategy`` order). Every target is resolved
before the session's first connection into its connection plan
(:class:`~kumocore.queue.reconnect.ConnectionPlan`; its later connections take the next
address from it): one address in ``prohibited_hosts`` anywhere in that plan refuses
the whole plan (a mail loop, a bounce) without connecting, and ``skip_hosts`` addresses
are left out of it. With ``enable_dane`` each address's TLSA records decide the TLS posture
(:mod:`kumocore.delivery.dane`); a site whose TLS broke is remembered
(:mod:`kumocore.delivery.broken_tls`). A protocol other than SMTP opens its own kind of
connection. When no address takes the connection, :class:`ConnectionFailed` says why.

An ``mx_list`` entry naming a unix-domain socket (``/run/lmtp.sock``, see
:mod:`kumocore.dns.unix_path`) is one address without a DNS lookup, outside the reach of
``prohibited_hosts``, ``skip_hosts``, ``ip_lookup_strategy`` and DANE (they are about IP
addresses), and is connected to without a source address, as KumoMTA does.

The session's trace (:class:`~kumocore.trace.events.ClientTracer`) is made by the
session and spans all its connections under the dispatcher's ``session_id``, as
KumoMTA's does: ``BeginSession`` is sent once, when the plan is first resolved.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kumocore.config.protocols import SmtpProtocol
from kumocore.delivery.broken_tls import reconnect_in_clear
from kumocore.delivery.client import open_connection
from kumocore.delivery.client_failure import ConnectFailure
from kumocore.delivery.dane import decide, selection_secure
from kumocore.delivery.mta_sts import tls_mode_for
from kumocore.dns.mx import order_addresses
from kumocore.dns.unix_path import is_unix_path
from kumocore.mail.internal_responses import (
    ONLY_SKIP_HOSTS,
    connect_failed,
    mx_unresolved,
    prohibited_host,
)
from kumocore.mail.response import Response
from kumocore.queue.dispatchers import current as current_dispatcher
from kumocore.queue.reconnect import ConnectionPlan
from kumocore.trace.bus import CLIENT_TRACE
from kumocore.trace.events import ClientTracer

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.delivery.client import SmtpClientConnection
    from kumocore.delivery.dane import DanePolicy
    from kumocore.dns.mx import MailExchanger, MxTarget
    from kumocore.queue.path import EgressPath


class ConnectionFailed(Exception):
    """No MX host of the path could be reached; ``response`` says why."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.to_single_line())
        self.response = response


class _NoAddress(Exception):
    """An MX target has no address to try; the message says why."""


async def connect(
    path: EgressPath, plan: ConnectionPlan | None = None, tracer: ClientTracer | None = None
) -> SmtpClientConnection:
    """Connect to the first reachable address of ``plan`` (resolved now if it is new:
    every MX address of ``path``, in connection order), taking the addresses it tries
    out of it; or, for a protocol other than SMTP, open that protocol's connection.
    ``tracer``: the session's trace (a fresh one when the caller has none)."""

    if path.protocol is not None and not isinstance(path.protocol, SmtpProtocol):
        conn: SmtpClientConnection = await path.protocol.connect(path)
        return conn
    config = tls_mode_for(path.config, path.mx)  # MTA-STS enforce/testing: TLS posture
    tls_mode = path.shared.broken_tls.tls_mode(path.key.site, config)
    if isinstance(tls_mode, Response):
        raise ConnectionFailed(connect_failed([tls_mode.content]))
    return await _first_reachable(path, config, tls_mode, plan or ConnectionPlan(),
                                  tracer or ClientTracer())


def _begin_trace(
    path: EgressPath, tracer: ClientTracer, candidates: Iterable[tuple[MxTarget, str]]
) -> None:
    """The trace meta KumoMTA's ``BeginSession`` carries (:mod:`kumocore.trace`), set
    when the session's plan is resolved."""
    meta = tracer.meta
    meta["egress_source"] = path.source.name
    meta["ready_queue_name"] = path.key.name
    first = path.messages[0] if path.messages else None
    queue = path.shared.queue_of(first) if first is not None else None
    if queue is not None:
        meta["egress_pool"] = queue.pool_name
    if CLIENT_TRACE.active:
        meta["mx_plan"] = _mx_plan(candidates)
        tracer.begin()


def _mx_plan(candidates: Iterable[tuple[MxTarget, str]]) -> dict[str, Any]:
    """The plan as KumoMTA's trace shows it (its ``ResolvedMxAddresses``): ``{"Addresses":
    [{"name", "addr"}...]}``, last to try first (KumoMTA pops its plan from the end); an
    ``addr`` has the port an ``mx_list`` entry gave, a socket path is the path."""
    plan = [{"name": target.name,
             "addr": address if target.port is None or is_unix_path(address)
             else (f"[{address}]:{target.port}" if ":" in address
                   else f"{address}:{target.port}")}
            for target, address in candidates]  # fmt: skip
    return {"Addresses": plan[::-1]}


async def _first_reachable(
    path: EgressPath, config: EgressPathConfig, tls_mode: str, plan: ConnectionPlan,
    tracer: ClientTracer,
) -> SmtpClientConnection:
    source = path.source
    candidates = plan.remaining
    if candidates is None:
        candidates = plan.resolve(await _plan(path, config))
        _begin_trace(path, tracer, candidates)
    failures: list[str] = []  # per candidate host, why it did not take the connection
    health = path.shared.source_health
    connection = current_dispatcher.get()
    while candidates:
        target, address = candidates.popleft()
        if connection is not None:  # each address tried is progress (its own timeout)
            connection.touch()
        unix = is_unix_path(address)
        port = int(source.remote_port or target.port or config.smtp_port)
        where = f"connect to {address}" if unix else f"connect to {target.name} [{address}]:{port}"
        if health.suspended and health.remaining(source.name) is not None:
            # As KumoMTA: fail at once rather than wait out the connect timeout.
            failures.append(f"{where}: source {source.name} is unhealthy and suspended")
            continue
        dane = (await _dane(path, target, address, port)
                if config.enable_dane and not unix else None)
        if isinstance(dane, Response):  # TLSA status unknown: never less security
            failures.append(f"{where}: {dane.content}")
            continue
        options = dict(
            mx_host=target.name,
            address=address,
            # KumoMTA: the source's remote_port, else the mx_list (or queue name)
            # port, else the path's smtp_port.
            port=port,
            source_address=None if unix else source.source_address,
            egress_source=source,
            ehlo_domain=config.ehlo_domain or source.ehlo_domain or path.shared.hostname,
            path=config,
            tracer=tracer,
        )
        if dane is not None:
            options["dane"] = dane
        try:
            conn = await _open(path, options, dane.tls_mode(tls_mode) if dane else tls_mode)
            plan.current = (target, address)
            return conn
        except ConnectFailure as failure:
            # Whatever the host said (even a 5xx greeting) refuses the session, not
            # the message: another host or a later attempt may take it.
            failures.append(f"{where}: {failure.reason}")
            if failure.source_failure is not None:  # the source is broken, not the MX
                health.record(source, failure.source_failure)
            if failure.counted_as is not None:  # bind_failures, proxy_connection_failures
                path.shared.counts.connect_failed(failure.counted_as)
    raise ConnectionFailed(connect_failed(failures))


async def _plan(
    path: EgressPath, config: EgressPathConfig
) -> list[tuple[MxTarget, str]]:
    """Every MX address of the path in connection order, ``skip_hosts`` left out.

    Raises :class:`ConnectionFailed` when the plan may not be tried: no address at all
    (transient), any address in ``prohibited_hosts`` (KumoMTA checks the whole list
    before connecting: an MX pointing back at us, even as a backup, is a mail loop, so
    the queue bounces), or only ``skip_hosts`` addresses (transient)."""
    candidates: list[tuple[MxTarget, str]] = []
    lookup_errors: list[str] = []
    for target in path.targets:
        if is_unix_path(target.address):
            assert target.address is not None
            candidates.append((target, target.address))
            continue
        try:
            addresses = await _addresses(path, target, config.ip_lookup_strategy)
        except _NoAddress as exc:
            lookup_errors.append(str(exc))
            continue
        candidates += [(target, address) for address in addresses]
    if path.mx is not None and len(candidates) > 1:
        candidates = _shuffled_by_preference(path.mx, candidates)
    if not candidates:  # a name that does not resolve (now) is transient
        raise ConnectionFailed(mx_unresolved(lookup_errors))
    # KumoMTA keeps its plan last-to-try first and names the first prohibited address
    # it meets in it: the prohibited one tried last here.
    for target, address in reversed(candidates):
        if not is_unix_path(address) and config.prohibited_hosts.contains(address):
            hosts = ", ".join(f'"{entry}"' for entry in config.prohibited_hosts)
            raise ConnectionFailed(
                prohibited_host(f"{target.name}/{address}", "{" + hosts + "}"))
    kept = [(t, a) for t, a in candidates
            if is_unix_path(a) or not config.skip_hosts.contains(a)]
    if not kept:
        raise ConnectionFailed(ONLY_SKIP_HOSTS)
    return kept


def _shuffled_by_preference(
    mx: MailExchanger, candidates: list[tuple[MxTarget, str]]
) -> list[tuple[MxTarget, str]]:
    """``candidates`` (in preference order) with the addresses of each preference level
    in random order, as KumoMTA's MX resolution orders them: equal MX hosts share the
    connections, a less preferred host is never tried before a more preferred one."""
    pref_of = {host: pref for pref, hosts in mx.by_pref.items() for host in hosts}
    ordered: list[tuple[MxTarget, str]] = []
    level: list[tuple[MxTarget, str]] = []
    level_pref: int | None = None
    for candidate in candidates:
        pref = pref_of.get(candidate[0].label)
        if level and pref != level_pref:
            random.shuffle(level)
            ordered += level
            level = []
        level_pref = pref
        level.append(candidate)
    random.shuffle(level)
    return ordered + level


async def _dane(
    path: EgressPath, target: MxTarget, address: str, port: int
) -> DanePolicy | Response:
    """What the MX host's TLSA records say (see :mod:`kumocore.delivery.dane`)."""

    trusted_list = bool(getattr(path.protocol, "treat_mx_list_as_secure", False))
    return await decide(path.shared.resolver, target.name, address, port,
                        secure_selection=selection_secure(path.mx, trusted_list),
                        counts=path.shared.dane_counts,
                        preresolved=target.address is not None)


async def _addresses(path: EgressPath, target: MxTarget, strategy: str) -> list[str]:
    """The addresses of one MX target, in ``ip_lookup_strategy`` order."""

    try:
        addresses = (
            [target.address] if target.address
            else await path.shared.resolver.resolve_ips(target.name))
    except Exception as exc:
        raise _NoAddress(f"address lookup for {target.name} failed: {exc}") from exc
    ordered = order_addresses(addresses, strategy)
    if not ordered:
        raise _NoAddress(
            f"no address of {target.name} is allowed by ip_lookup_strategy {strategy}")
    return ordered


async def _open(
    path: EgressPath, options: dict[str, Any], tls_mode: str
) -> SmtpClientConnection:
    """One address: connect; after broken TLS remember the site, and reconnect in clear
    text when the path asks to (see :mod:`kumocore.delivery.broken_tls`)."""

    try:
        conn = await open_connection(**options, tls_mode=tls_mode)
    except ConnectFailure as failure:
        if not failure.tls_broken:
            raise
        path.shared.broken_tls.failed(path.key.site, path.config)
        if not reconnect_in_clear(path.config, tls_mode):
            raise
        conn = await open_connection(**options, tls_mode="Disabled")
    conn.site = path.key.name  # the ready queue, as KumoMTA names it in its texts
    return conn
