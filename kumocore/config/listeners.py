"""ESMTP listener options: ``kumo.start_esmtp_listener``, its ``peer``/``via`` blocks and
the per-connection overrides of ``smtp_server_get_dynamic_parameters``.

Defaults are KumoMTA's (crates/kumod/src/smtp_server.rs). The options of its ``domains``
entries (``kumo.make_listener_domain``) are :mod:`kumocore.config.listener_domain`; the
HTTP listener's (``kumo.start_http_listener``) are :mod:`kumocore.config.http_listener`.
"""

from __future__ import annotations

import dataclasses
import functools
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from kumocore.config.cidr import CidrSet, parse_network, split_host_port
from kumocore.config.conv import Conv, Path, check_keys
from kumocore.config.converters import (
    BOOL,
    CIDRS,
    DURATION,
    KEY_SOURCE,
    SIZE,
    SOCKET_ADDRESS,
    STRING,
    STRINGS,
    TABLE,
    THROTTLE,
    enum,
    integer,
    map_of,
    size_in,
)
from kumocore.config.listener_domain import ListenerDomain
from kumocore.config.options import Options, nested, option
from kumocore.config.unsupported import refuse_unsupported
from kumocore.errors import ConfigError
from kumocore.throttle.spec import ThrottleSpec

#: ``data_buffer_size``: a size within 1 KiB to 64 MiB (memory each session may hold).
DATA_BUFFER_SIZE = size_in(1024, 64 * 1024 * 1024)

#: A ``peer``/``via`` block: the network it applies to and its converted options.
OverrideRule = tuple[CidrSet, dict[str, Any]]


class TraceHeaders(Options, options_for="kumo.start_esmtp_listener trace_headers"):
    """The ``Received:`` header and the supplemental ``X-KumoRef`` header."""

    received_header: bool = option(BOOL, default=True)
    supplemental_header: bool = option(BOOL, default=True)
    header_name: str = option(STRING, default="X-KumoRef")
    include_meta_names: tuple[str, ...] = option(STRINGS, default=[])


def _cidr_keyed(value: Any, path: Path) -> dict[str, dict[str, Any]]:
    """A ``peer``/``via`` table: CIDR -> listener options that override the listener's.

    The tables are kept as written (so ``to_dict`` gives them back) once checked; the
    listener converts them when a connection first needs them.
    """
    tables: dict[str, dict[str, Any]] = map_of(TABLE).load(value, path)
    for cidr, table in tables.items():
        try:
            parse_network(cidr)
        except ValueError as exc:
            raise path.item(cidr).invalid(f"expected a CIDR block as key: {exc}", cidr) from None
        if table.get("tls_required_client_ca") is not None:
            # Client certificates are not checked: a block asking for it must not be
            # accepted and then ignored (as for the listener's own option).
            raise ConfigError(
                f"'{path.item(cidr).key}.tls_required_client_ca' in "
                f"{path.function} is not supported by kumocore"
            )
        _convert_overrides(table, path.item(cidr))
    return tables


CIDR_KEYED = Conv(_cidr_keyed)


class EsmtpListenerConfig(
    Options,
    options_for="kumo.start_esmtp_listener",
):
    """One SMTP listener (``kumo.start_esmtp_listener``). Durations are in seconds."""

    listen: str = option(SOCKET_ADDRESS, default="127.0.0.1:2025")
    hostname: str = option(STRING, default_factory=socket.gethostname)
    banner: str = option(STRING, default="kumocore ESMTP")
    relay_hosts: CidrSet = option(CIDRS, default=["127.0.0.1", "::1"])
    max_connections: int = option(integer(1), default=32 * 1024)
    max_messages_per_connection: int = option(integer(1), default=10_000)
    max_recipients_per_message: int = option(integer(1), default=1024)
    max_message_size: int = option(SIZE, default="20 MiB")
    # How much of a message's DATA a session holds in its stream before taking it out
    # (two read windows; kumocore.reception.smtp.data). Bounded: it is memory per session.
    data_buffer_size: int = option(DATA_BUFFER_SIZE, default="128 KiB")
    # kumocore's own: DATA bytes all sessions of the listener may hold in memory at once.
    max_data_buffered: int = option(SIZE, default="256 MiB")
    # kumocore's own: a larger header block is refused (552 5.3.4); Postfix's
    # header_size_limit has the same default.
    max_header_block_size: int = option(SIZE, default="100 KiB")
    client_timeout: float = option(DURATION, default="60s")
    data_processing_timeout: float = option(DURATION, default="300s")
    # 998 octets plus CRLF, RFC 5321's limit.
    line_length_hard_limit: int = option(integer(1), default=998)
    invalid_line_endings: str = option(enum("Deny", "Allow", "Fix"), default="Deny")
    tls_certificate: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    tls_private_key: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    tls_required_client_ca: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    # kumocore's own defences (docs/reliability.md, "SMTP listener defences"); KumoMTA
    # has no options for these.
    tls_handshake_timeout: float = option(DURATION, default="30s")
    max_command_errors: int = option(integer(1), default=20)
    max_junk_commands: int = option(integer(0), default=100)
    max_session_duration: float = option(DURATION, default="1h")
    max_connections_per_peer: int = option(integer(1), default=50)
    # New connections one client (outside relay_hosts) may open, as a KumoMTA throttle
    # spec ("100/s", "6000/m,max_burst=100"); off by default, as Postfix's
    # smtpd_client_connection_rate_limit: any default would refuse some legitimate
    # injector that opens a connection per message (kumocore.reception.smtp.limits).
    max_connection_rate_per_peer: ThrottleSpec | None = option(THROTTLE, default=None)
    reserved_file_descriptors: int = option(integer(0), default=256)
    max_auth_failures_per_peer: int = option(integer(1), default=10)
    auth_failure_window: float = option(DURATION, default="10m")
    domains: dict[str, ListenerDomain] = option(map_of(nested(ListenerDomain)), default={})
    trace_headers: TraceHeaders = option(nested(TraceHeaders), default_factory=TraceHeaders)
    # How a transaction's recipients become messages when no smtp_server_split_transaction
    # handler decides (kumocore.reception.smtp.batches).
    batch_handling: str = option(
        enum("BifurcateAlways", "BatchByDomain"), default="BifurcateAlways"
    )
    deferred_spool: bool = option(BOOL, default=False)
    # KumoMTA's: queue to deferred_smtp_inject.kumomta.internal without running
    # smtp_server_message_received (kumocore.queue.deferred_inject).
    deferred_queue: bool = option(BOOL, default=False)
    allow_xclient: bool = option(BOOL, default=False)
    require_proxy_protocol: bool = option(BOOL, default=False)
    meta: dict[str, Any] = option(TABLE, default={})
    peer: dict[str, dict[str, Any]] = option(CIDR_KEYED, default={})
    via: dict[str, dict[str, Any]] = option(CIDR_KEYED, default={})

    # Derived once, lazily (cached_property writes past the frozen dataclass's guard),
    # because they are consulted for every connection and every RCPT TO.
    @functools.cached_property
    def _peer_rules(self) -> tuple[OverrideRule, ...]:
        return _override_rules(self.peer, Path(self.options_for, "peer"))

    @functools.cached_property
    def _via_rules(self) -> tuple[OverrideRule, ...]:
        return _override_rules(self.via, Path(self.options_for, "via"))

    @functools.cached_property
    def _domains(self) -> dict[str, ListenerDomain]:
        return {domain.lower().rstrip("."): conf for domain, conf in self.domains.items()}

    def override_blocks(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Each ``peer`` then ``via`` block as written: ``(kind, cidr, converted options)``."""
        for kind, blocks in (("peer", self.peer), ("via", self.via)):
            path = Path(self.options_for, kind)
            for cidr, table in blocks.items():
                yield kind, cidr, _convert_overrides(table, path.item(cidr))

    def listen_host_port(self) -> tuple[str, int]:
        """``listen`` split: ``"[::1]:25"`` -> ``("::1", 25)``, ``"0.0.0.0:25"`` -> ..."""
        return split_host_port(self.listen)

    def listener_domain(self, domain: str) -> ListenerDomain | None:
        """The ``domains`` entry for ``domain``: exact (any case), else ``*.parent``."""
        table = self._domains
        name = domain.lower().rstrip(".")
        if name in table:
            return table[name]
        labels = name.split(".")
        for i in range(1, len(labels)):
            found = table.get("*." + ".".join(labels[i:]))
            if found is not None:
                return found
        return None

    def for_connection(self, peer_ip: str, local_ip: str) -> EsmtpListenerConfig:
        """The parameters for one connection, as KumoMTA applies them: the most specific
        ``peer`` block matching the client's address, then the ``via`` block matching the
        address it connected to. ``meta`` tables are merged rather than replaced."""
        return self._overridden({}, self._peer_rules, self._via_rules, peer_ip, local_ip)

    def with_overrides(
        self, overrides: DynamicOverrides, peer_ip: str, local_ip: str
    ) -> EsmtpListenerConfig:
        """These parameters with a policy's per-connection ``overrides`` applied on top
        (``smtp_server_get_dynamic_parameters``), as KumoMTA applies them: the table's own
        options, then its ``peer`` block matching the client, then its ``via`` block."""
        return self._overridden(overrides.options, overrides.peer, overrides.via, peer_ip, local_ip)

    def _overridden(
        self,
        options: dict[str, Any],
        peer_rules: tuple[OverrideRule, ...],
        via_rules: tuple[OverrideRule, ...],
        peer_ip: str,
        local_ip: str,
    ) -> EsmtpListenerConfig:
        changes = dict(options)
        meta = {**self.meta, **options.get("meta", {})}
        for rules, ip in ((peer_rules, peer_ip), (via_rules, local_ip)):
            for networks, overrides in rules:
                if networks.contains(ip):
                    meta.update(overrides.get("meta", {}))
                    changes.update(overrides)
                    break
        if not changes:
            return self
        return dataclasses.replace(self, **{**changes, "meta": meta})


#: Options a ``peer``/``via`` block may override (KumoMTA's GenericEsmtpListenerParams);
#: the socket itself, the listener-wide caps and nested blocks belong to the listener.
OVERRIDABLE = tuple(
    name
    for name in EsmtpListenerConfig.option_converters
    if name
    not in {
        "listen",
        "max_connections",
        "max_data_buffered",
        "domains",
        "peer",
        "via",
        "reserved_file_descriptors",
        "max_auth_failures_per_peer",
        "auth_failure_window",
    }
)


def _convert_overrides(table: dict[str, Any], path: Path) -> dict[str, Any]:
    check_keys(table, OVERRIDABLE, path)
    converters = EsmtpListenerConfig.option_converters
    return {k: converters[k].load(v, path.child(k)) for k, v in table.items() if v is not None}


def _override_rules(blocks: dict[str, dict[str, Any]], path: Path) -> tuple[OverrideRule, ...]:
    """(network, converted overrides), most specific network first."""
    rules = [
        (parse_network(cidr).prefixlen, CidrSet([cidr]), _convert_overrides(table, path.item(cidr)))
        for cidr, table in blocks.items()
    ]
    rules.sort(key=lambda rule: -rule[0])
    return tuple((networks, overrides) for _, networks, overrides in rules)


#: The event whose answer :func:`dynamic_overrides` checks (named in its errors).
DYNAMIC_EVENT = "smtp_server_get_dynamic_parameters"
#: What the event may not change: the socket and what the whole listener shares.
NOT_OVERRIDABLE = frozenset(EsmtpListenerConfig.option_converters) - {*OVERRIDABLE, "peer", "via"}
_DEFAULTS = {field.name: field for field in dataclasses.fields(EsmtpListenerConfig)}


@dataclasses.dataclass(frozen=True)
class DynamicOverrides:
    """A policy's checked per-connection overrides: its options, then its own
    ``peer``/``via`` blocks (most specific first)."""

    options: dict[str, Any]
    peer: tuple[OverrideRule, ...] = ()
    via: tuple[OverrideRule, ...] = ()


def dynamic_overrides(table: Mapping[str, Any]) -> DynamicOverrides:
    """Check and convert what ``smtp_server_get_dynamic_parameters`` returned, exactly as
    ``kumo.start_esmtp_listener`` checks its options; a :class:`ConfigError` names the
    offending key."""
    path = Path(DYNAMIC_EVENT)
    for key in table:
        if key in NOT_OVERRIDABLE:
            raise ConfigError(
                f"{key!r} cannot be changed per connection by {DYNAMIC_EVENT}: "
                "set it in kumo.start_esmtp_listener"
            )
    options = {k: v for k, v in table.items() if k not in ("peer", "via")}
    converted = _convert_overrides(options, path)
    for name in EsmtpListenerConfig.unsupported_options & converted.keys():
        if converted[name] != _DEFAULTS[name].default:
            refuse_unsupported(name, path)
    if converted.get("tls_required_client_ca") is not None:
        # A security setting kumocore cannot honour must not be silently ignored.
        raise ConfigError(
            f"'tls_required_client_ca' in {DYNAMIC_EVENT} is not supported by kumocore"
        )
    blocks = {
        key: CIDR_KEYED.load(table[key], path.child(key))
        for key in ("peer", "via")
        if table.get(key) is not None
    }
    return DynamicOverrides(
        converted,
        _override_rules(blocks.get("peer", {}), path.child("peer")),
        _override_rules(blocks.get("via", {}), path.child("via")),
    )
