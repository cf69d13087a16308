"""The filters a tracing client sends after the WebSocket upgrade (KumoMTA's
``TraceSmtpV1Request`` and ``TraceSmtpClientV1Request``), and how an event is matched.

As in KumoMTA a filter only excludes an event whose connection meta *has* the property
and does not match it: a client session's ``domain`` or ``sender`` is unknown until its
first message, so its earlier events still pass. Two differences, both where KumoMTA's
own filter never takes effect: ``ready_queue`` is matched against the meta
``ready_queue_name`` (the key KumoMTA sets; its filter reads ``ready_queue``), and
``rcpt_to`` against each entry of the ``recipient`` list. An unknown field is refused, so
that a misspelt filter does not quietly trace everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kumocore.config.cidr import CidrSet
from kumocore.errors import ConfigError

#: Client filter fields (list of strings) and the connection meta key each one matches.
CLIENT_FIELDS = {
    "campaign": "campaign",
    "domain": "domain",
    "egress_pool": "egress_pool",
    "egress_source": "egress_source",
    "mx_host": "mx_host",
    "ready_queue": "ready_queue_name",
    "rcpt_to": "recipient",
    "routing_domain": "routing_domain",
    "mail_from": "sender",
    "tenant": "tenant",
}


#: Peers whose match a server filter remembers before it starts afresh.
SEEN_LIMIT = 4096


class TraceRequestError(ValueError):
    """The filter the client sent cannot be used."""


def address_of(meta: dict[str, Any], key: str) -> str | None:
    """The IP address in ``meta[key]`` (``ip:port``, ``[ipv6]:port`` or a bare IP)."""
    value = meta.get(key)
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def _cidrs(body: dict[str, Any], name: str) -> CidrSet | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TraceRequestError(f"{name} must be a list of CIDR blocks")
    try:
        return CidrSet(value)
    except ConfigError as exc:
        raise TraceRequestError(f"{name}: {exc}") from None


def _in(cidrs: CidrSet | None, meta: dict[str, Any] | None, key: str) -> bool:
    """False only when ``meta`` has an address under ``key`` outside ``cidrs``."""
    if cidrs is None or meta is None:
        return True
    address = address_of(meta, key)
    if address is None:
        return True
    try:
        return cidrs.contains(address)
    except ValueError:
        return True  # not an address (a unix socket path): nothing to exclude it by


def _object(body: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TraceRequestError("the trace request must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise TraceRequestError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; "
            f"the request takes {', '.join(fields)}"
        )
    terse = body.get("terse", False)
    if not isinstance(terse, bool):
        raise TraceRequestError("terse must be true or false")
    return body


@dataclass(frozen=True)
class ServerFilter:
    """``{"source_addr": [CIDR...] | null, "terse": bool}``."""

    source_addr: CidrSet | None = None
    terse: bool = False
    #: Answers by ``received_from``: asked for every read and write of every session
    #: while this filter traces, it changes only with the peer (bounded, see below).
    _seen: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, body: Any) -> ServerFilter:
        body = _object(body, ("source_addr", "terse"))
        return cls(_cidrs(body, "source_addr"), body.get("terse", False))

    def __call__(self, meta: dict[str, Any] | None) -> bool:
        if self.source_addr is None or meta is None:
            return True
        peer = meta.get("received_from")
        if not isinstance(peer, str):
            return True
        seen = self._seen
        answer = seen.get(peer)
        if answer is None:
            if len(seen) >= SEEN_LIMIT:
                seen.clear()
            answer = seen[peer] = _in(self.source_addr, meta, "received_from")
        return answer


@dataclass(frozen=True)
class ClientFilter:
    """KumoMTA's ``TraceSmtpClientV1Request``: lists of allowed values per property,
    ``source_addr``/``mx_addr`` CIDR lists, ``terse``."""

    allowed: dict[str, frozenset[str]] = field(default_factory=dict)  # meta key -> values
    source_addr: CidrSet | None = None
    mx_addr: CidrSet | None = None
    terse: bool = False

    @classmethod
    def parse(cls, body: Any) -> ClientFilter:
        body = _object(body, (*CLIENT_FIELDS, "source_addr", "mx_addr", "terse"))
        allowed: dict[str, frozenset[str]] = {}
        for name, key in CLIENT_FIELDS.items():
            values = body.get(name) or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise TraceRequestError(f"{name} must be a list of strings")
            if values:
                allowed[key] = frozenset(values)
        return cls(
            allowed, _cidrs(body, "source_addr"), _cidrs(body, "mx_addr"), body.get("terse", False)
        )

    def __call__(self, meta: dict[str, Any] | None) -> bool:
        if meta is None:
            return True
        if not (
            _in(self.source_addr, meta, "source_address") and _in(self.mx_addr, meta, "mx_address")
        ):
            return False
        for key, values in self.allowed.items():
            value = meta.get(key)
            if isinstance(value, str) and value not in values:
                return False
            if isinstance(value, list) and value and not values.intersection(value):
                return False
        return True
