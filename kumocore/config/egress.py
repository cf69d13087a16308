"""Egress options: sources (``kumo.make_egress_source``), pools of sources
(``kumo.make_egress_pool``) and paths (``kumo.make_egress_path``: traffic shaping for one
source sending to one destination site).

Field names and defaults are KumoMTA's (crates/kumod/src/egress_source.rs,
crates/kumo-api-types/src/egress_path.rs, rfc5321 SmtpClientTimeouts).
"""

from __future__ import annotations

from typing import Any

from kumocore.config.cidr import CidrSet
from kumocore.config.conv import Conv, Path
from kumocore.config.converters import (
    BOOL,
    IP_ADDRESS,
    KEY_SOURCE,
    SOCKET_ADDRESS,
    STRING,
    STRINGS,
    THROTTLE,
    enum,
    integer,
    list_of,
    map_of,
    parsed,
)
from kumocore.config.kumo_serde import CIDR_SET, DURATION, LIMIT
from kumocore.config.openssl_options import checked_openssl_options
from kumocore.config.options import Options, nested, option
from kumocore.errors import ConfigError
from kumocore.throttle.spec import LimitSpec, ThrottleSpec

TLS_MODES = ("Opportunistic", "OpportunisticInsecure", "Required", "RequiredInsecure", "Disabled")
MEMORY_REDUCTION_POLICIES = ("ShrinkDataAndMeta", "ShrinkData", "NoShrink")
_PORT = integer(1, 65535)
_WAKEUP = enum("Aggressive", "Relaxed")
_MEMORY_REDUCTION = enum(*MEMORY_REDUCTION_POLICIES)


def _trigger(value: Any, path: Path) -> str | ThrottleSpec:
    # 'Immediate' (one failure suspends) or {Threshold = 'N/period'} (N failures in a window).
    if value == "Immediate":
        return "Immediate"
    if isinstance(value, dict) and set(value) == {"Threshold"}:
        spec: ThrottleSpec = THROTTLE.load(value["Threshold"], path.child("Threshold"))
        return spec
    raise path.invalid("expected 'Immediate' or {Threshold = 'N/period'}", value)


TRIGGER = Conv(_trigger, dump=lambda t: t if isinstance(t, str) else {"Threshold": str(t)})


class SuspendOnFailure(Options, options_for="kumo.make_egress_source suspend_when_*"):
    """Take a source out of pool selection for ``duration`` when it keeps failing."""

    trigger: str | ThrottleSpec = option(TRIGGER, default="Immediate")
    duration: float = option(DURATION)


class EgressSource(Options, options_for="kumo.make_egress_source"):
    """A way out: a local address to bind, or a HAProxy/SOCKS5 proxy to go through.
    ``suspend_when_*``: kumocore.queue.source_health."""

    name: str = option(STRING)
    ehlo_domain: str | None = option(STRING, default=None)
    source_address: str | None = option(IP_ADDRESS, default=None)
    remote_port: int | None = option(_PORT, default=None)
    ha_proxy_server: str | None = option(SOCKET_ADDRESS, default=None)
    ha_proxy_source_address: str | None = option(IP_ADDRESS, default=None)
    socks5_proxy_server: str | None = option(SOCKET_ADDRESS, default=None)
    socks5_proxy_source_address: str | None = option(IP_ADDRESS, default=None)
    socks5_proxy_username: str | None = option(STRING, default=None)
    socks5_proxy_password: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    #: kumocore's own: ask the proxy to bind ``socks5_proxy_source_address`` with a
    #: ``BIND`` before ``CONNECT``, as KumoMTA always does for its KumoProxy (and
    #: ``kumocore proxy serve``); false for a general SOCKS5 server, which chooses its
    #: outgoing address itself (Dante's ``external``) and reads a BIND otherwise.
    socks5_proxy_bind_source: bool = option(BOOL, default=True)
    suspend_when_unplumbed: SuspendOnFailure | None = option(nested(SuspendOnFailure), default=None)
    suspend_when_proxy_unhealthy: SuspendOnFailure | None = option(
        nested(SuspendOnFailure), default=None
    )
    ttl: float = option(DURATION, default="60s")

    def __post_init__(self) -> None:
        # KumoMTA silently connects directly when a proxy lacks its source address (or
        # the other way round); mail leaving from the wrong address is worse than a
        # refusal, so a half-configured proxy is refused here.
        for kind in ("ha_proxy", "socks5_proxy"):
            server = getattr(self, f"{kind}_server")
            source = getattr(self, f"{kind}_source_address")
            if (server is None) != (source is None):
                given, missing = (
                    (f"{kind}_server", f"{kind}_source_address")
                    if source is None
                    else (f"{kind}_source_address", f"{kind}_server")
                )
                raise ConfigError(
                    f"{self.options_for}: {given} needs {missing} too (source {self.name!r})"
                )
        if self.ha_proxy_server is not None and self.socks5_proxy_server is not None:
            raise ConfigError(
                f"{self.options_for}: source {self.name!r} names both an HAProxy and a "
                "SOCKS5 proxy; choose one"
            )
        if self.socks5_proxy_password is not None and self.socks5_proxy_username is None:
            raise ConfigError(
                f"{self.options_for}: socks5_proxy_password needs socks5_proxy_username"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain data; kumocore's own ``socks5_proxy_bind_source`` only when it is not
        its default, so a source serialises as KumoMTA's does (``kumo.json_encode``,
        ``invoke_get_egress_source``) and a false one still round-trips."""
        table = super().to_dict()
        if self.socks5_proxy_bind_source:
            del table["socks5_proxy_bind_source"]
        return table


class EgressPoolEntry(Options, options_for="kumo.make_egress_pool entries"):
    """A source in a pool; ``weight`` 0 keeps it defined but unused."""

    name: str = option(STRING)
    weight: int = option(integer(0, 2**32 - 1), default=1)


class EgressPool(Options, options_for="kumo.make_egress_pool"):
    """Sources chosen by weighted round robin for the queues that use this pool."""

    name: str = option(STRING)
    entries: tuple[EgressPoolEntry, ...] = option(list_of(nested(EgressPoolEntry)), default=[])
    ttl: float = option(DURATION, default="60s")


# Parsed but not acted on yet: a policy setting one of them (to other than its default)
# is refused at load unless the operator passes --allow-unsupported.
PATH_UNSUPPORTED = (
    "openssl_cipher_suites",
    "rustls_cipher_suites",
    "aggressive_connection_opening",
    "dispatcher_wakeup_strategy",
    "maintainer_wakeup_strategy",
    "readyq_pool_name",
)


#: Parsed, never written back: KumoMTA skips them when it serialises a path.
_NOT_SERIALISED = ("openssl_options", "rustls_cipher_suites")

#: ``openssl_options``: flag names joined by ``|``, checked at load.
OPENSSL_OPTIONS = parsed(checked_openssl_options)

#: KumoMTA's ``ip_lookup_strategy`` values (also ``kumo.dns.lookup_addr``'s strategy).
IP_LOOKUP_STRATEGIES = ("Ipv4Only", "Ipv6Only", "Ipv4AndIpv6", "Ipv6ThenIpv4", "Ipv4ThenIpv6")


class EgressPathConfig(Options, options_for="kumo.make_egress_path", unsupported=PATH_UNSUPPORTED):
    """Traffic shaping for one (egress source, destination site) path.

    Durations are in seconds; rates are :class:`ThrottleSpec`, connection limits
    :class:`LimitSpec`.
    """

    connection_limit: LimitSpec = option(LIMIT, default=32)
    additional_connection_limits: dict[str, LimitSpec] = option(map_of(LIMIT), default={})
    enable_tls: str = option(enum(*TLS_MODES), default="Opportunistic")
    enable_mta_sts: bool = option(BOOL, default=True)
    # DANE (kumocore.delivery.dane); kumo.make_egress_path refuses true unless the
    # resolver is marked as validating DNSSEC.
    enable_dane: bool = option(BOOL, default=False)
    enable_pipelining: bool = option(BOOL, default=True)
    enable_rset: bool = option(BOOL, default=True)
    tls_prefer_openssl: bool = option(BOOL, default=False)
    tls_certificate: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    tls_private_key: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    openssl_cipher_list: str | None = option(STRING, default=None)
    openssl_cipher_suites: str | None = option(STRING, default=None)
    # Checked at load (KumoMTA's names), applied to each connection's client context.
    openssl_options: str | None = option(OPENSSL_OPTIONS, default=None)
    rustls_cipher_suites: tuple[str, ...] = option(STRINGS, default=[])

    # SMTP client timeouts (KumoMTA's SmtpClientTimeouts, flattened into the path).
    connect_timeout: float = option(DURATION, default="60s")
    banner_timeout: float = option(DURATION, default="60s")
    ehlo_timeout: float = option(DURATION, default="300s")
    mail_from_timeout: float = option(DURATION, default="300s")
    rcpt_to_timeout: float = option(DURATION, default="300s")
    data_timeout: float = option(DURATION, default="300s")
    data_dot_timeout: float = option(DURATION, default="300s")
    rset_timeout: float = option(DURATION, default="5s")
    idle_timeout: float = option(DURATION, default="5s")
    starttls_timeout: float = option(DURATION, default="5s")
    auth_timeout: float = option(DURATION, default="60s")
    system_shutdown_timeout: float | None = option(DURATION, default=None)

    max_ready: int = option(integer(1), default=1024)
    consecutive_connection_failures_before_delay: int = option(integer(0), default=100)
    smtp_port: int = option(_PORT, default=25)
    smtp_auth_plain_username: str | None = option(STRING, default=None)
    smtp_auth_plain_password: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    allow_smtp_auth_plain_without_tls: bool = option(BOOL, default=False)
    allow_smtp_auth_plain_without_valid_certificate: bool = option(BOOL, default=False)
    max_message_rate: ThrottleSpec | None = option(THROTTLE, default=None)
    additional_message_rate_throttles: dict[str, ThrottleSpec] = option(
        map_of(THROTTLE), default={}
    )
    # How often the pool's rotation may pick this path's source (IP warm-up):
    # kumocore.queue.source_selection.
    source_selection_rate: ThrottleSpec | None = option(THROTTLE, default=None)
    additional_source_selection_rates: dict[str, ThrottleSpec] = option(
        map_of(THROTTLE), default={}
    )
    max_connection_rate: ThrottleSpec | None = option(THROTTLE, default=None)
    max_deliveries_per_connection: int = option(integer(1), default=1024)
    max_recipients_per_batch: int = option(integer(1), default=100)
    # Never connect to ourselves or to "any" addresses, whatever the MX records say.
    prohibited_hosts: CidrSet = option(CIDR_SET, default=["127.0.0.0/8", "::1", "0.0.0.0", "::"])
    skip_hosts: CidrSet = option(CIDR_SET, default=[])
    ip_lookup_strategy: str = option(enum(*IP_LOOKUP_STRATEGIES), default="Ipv4AndIpv6")
    ehlo_domain: str | None = option(STRING, default=None)
    aggressive_connection_opening: bool = option(BOOL, default=False)
    refresh_interval: float = option(DURATION, default="60s")
    refresh_strategy: str = option(enum("Ttl", "Epoch"), default="Ttl")
    dispatcher_wakeup_strategy: str = option(_WAKEUP, default="Aggressive")
    maintainer_wakeup_strategy: str = option(_WAKEUP, default="Aggressive")
    provider_name: str | None = option(STRING, default=None)
    remember_broken_tls: float | None = option(DURATION, default=None)
    opportunistic_tls_reconnect_on_failed_handshake: bool = option(BOOL, default=False)
    use_lmtp: bool = option(BOOL, default=False)
    reconnect_strategy: str = option(
        enum("TerminateSession", "ReconnectSameHost", "ConnectNextHost"),
        default="ConnectNextHost",
    )
    readyq_pool_name: str | None = option(STRING, default=None)
    low_memory_reduction_policy: str = option(_MEMORY_REDUCTION, default="ShrinkDataAndMeta")
    no_memory_reduction_policy: str = option(_MEMORY_REDUCTION, default="ShrinkDataAndMeta")
    try_next_host_on_transport_error: bool = option(BOOL, default=False)
    ignore_8bit_checks: bool = option(BOOL, default=False)
    # None: derived from the protocol and the command timeouts (kumocore.queue.watchdog).
    dispatcher_progress_watchdog_timeout: float | None = option(DURATION, default=None)

    def to_dict(self) -> dict[str, Any]:
        """KumoMTA's serde form (:mod:`kumocore.config.kumo_serde`), which leaves out
        ``openssl_options`` and ``rustls_cipher_suites`` (KumoMTA does not serialise
        them)."""
        table = super().to_dict()
        for name in _NOT_SERIALISED:
            del table[name]
        return table

    @property
    def tls_allows_insecure(self) -> bool:
        """Whether invalid or self-signed server certificates are accepted."""
        return self.enable_tls in ("OpportunisticInsecure", "RequiredInsecure")

    @property
    def tls_required(self) -> bool:
        return self.enable_tls in ("Required", "RequiredInsecure")

    def total_message_send_duration(self) -> float:
        """The longest one message send can take, summing the client timeouts.

        KumoMTA uses it as the lease duration of a connection-limit slot, so that a
        crashed holder's slot expires instead of leaking.
        """
        return (
            self.connect_timeout
            + self.ehlo_timeout
            + self.auth_timeout
            + self.mail_from_timeout
            + self.rcpt_to_timeout
            + self.data_timeout
            + self.data_dot_timeout
            + self.starttls_timeout
            + self.idle_timeout
        )
