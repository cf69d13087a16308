"""KumoMTA's scheduled-queue names: ``campaign:tenant@domain!routing_domain``.

A message is placed in the scheduled queue named after its recipient domain and the
``tenant``, ``campaign`` and ``routing_domain`` meta values; the ``queue`` meta value, when
set, replaces the whole name (``null`` means "accept and discard"). The forms are::

    campaign:tenant@domain    tenant@domain    campaign:@domain    domain

each followed by ``!routing_domain`` when a routing domain is set. Parsing is the inverse
and follows KumoMTA exactly: split on the first ``@`` (prefix / domain), the prefix on its
first ``:`` (campaign / tenant), the domain on its first ``!`` (domain / routing domain).
One deliberate difference: an empty tenant or campaign is reported as None (KumoMTA
passes ``""`` for the tenant of ``campaign:@domain``), so policies test a single value.

A second one: the parts come from untrusted input (a policy copies ``X-Tenant`` into the
tenant), and KumoMTA builds the name from them verbatim, so a tenant ``x@evil.com`` puts
the message in a queue whose *domain* parses as ``evil.com@example.com`` — out of reach
of an operator's suspension or bounce for ``example.com``. Here the separators a part
cannot hold are percent-escaped when the name is built (``%`` → ``%25``, ``:`` → ``%3A``,
``@`` → ``%40``, ``!`` → ``%21``; ``:`` only in campaign and tenant, where it separates)
and unescaped when it is parsed, so ``parse(build(parts)) == parts`` for every value.
Names of parts without those characters are exactly KumoMTA's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kumocore.policy.policyfn import lua_type_name

__all__ = [
    "NULL_QUEUE",
    "QueueNameParts",
    "message_queue",
    "message_queue_name",
    "parse_queue_name",
    "queue_name_for",
]

#: A message whose queue is ``null`` is accepted and discarded at reception.
NULL_QUEUE = "null"

# Escapes for the prefix (campaign, tenant) and for the domain parts. "%" goes first so
# that the escapes themselves are never escaped again.
_PREFIX_ESCAPES = str.maketrans({"%": "%25", ":": "%3A", "@": "%40", "!": "%21"})
_DOMAIN_ESCAPES = str.maketrans({"%": "%25", "@": "%40", "!": "%21"})
_ESCAPED = re.compile("%(25|3A|40|21)")
_UNESCAPED = {"25": "%", "3A": ":", "40": "@", "21": "!"}


def _escape(part: str, table: dict[int, str]) -> str:
    # Names are built for every message received or recovered, and almost no part has
    # a character to escape: three substring tests cost a tenth of a translate().
    if "%" in part or "@" in part or "!" in part or (":" in part and table is _PREFIX_ESCAPES):
        return part.translate(table)
    return part


def _unescape(part: str) -> str:
    # Only the four escapes this module writes are decoded: any other "%" (in a queue
    # name an operator or policy wrote by hand) is left as it is.
    return _ESCAPED.sub(lambda match: _UNESCAPED[match[1]], part) if "%" in part else part


@dataclass(frozen=True, slots=True)
class QueueNameParts:
    """The components of a scheduled-queue name; absent parts are None."""

    campaign: str | None
    tenant: str | None
    domain: str
    routing_domain: str | None

    def __str__(self) -> str:
        return queue_name_for(self.domain, self.tenant, self.campaign, self.routing_domain)


def queue_name_for(
    domain: str,
    tenant: str | None = None,
    campaign: str | None = None,
    routing_domain: str | None = None,
) -> str:
    """The scheduled-queue name for these components (empty strings count as absent)."""
    domain = _escape(domain, _DOMAIN_ESCAPES)
    suffix = f"!{_escape(routing_domain, _DOMAIN_ESCAPES)}" if routing_domain else ""
    campaign = _escape(campaign, _PREFIX_ESCAPES) if campaign else campaign
    tenant = _escape(tenant, _PREFIX_ESCAPES) if tenant else tenant
    if campaign:
        return f"{campaign}:{tenant or ''}@{domain}{suffix}"
    if tenant:
        return f"{tenant}@{domain}{suffix}"
    return f"{domain}{suffix}"


def parse_queue_name(name: str) -> QueueNameParts:
    """Split a scheduled-queue name into its components (the inverse of queue_name_for)."""
    prefix, at, domain = name.partition("@")
    if not at:
        prefix, domain = "", name
    campaign, colon, tenant = prefix.partition(":")
    if not colon:
        campaign, tenant = "", prefix
    domain, _, routing_domain = domain.partition("!")
    return QueueNameParts(
        _unescape(campaign) or None,
        _unescape(tenant) or None,
        _unescape(domain),
        _unescape(routing_domain) or None,
    )


class _Domain(Protocol):
    @property
    def domain(self) -> str: ...


class Addressed(Protocol):
    """What naming a queue reads from a message: its meta and recipient domain (a
    structural type, so this module needs nothing from :mod:`kumocore.mail.message`)."""

    @property
    def meta(self) -> Mapping[str, Any]: ...
    @property
    def recipient(self) -> _Domain: ...


def _named_by_meta(meta: Mapping[str, Any]) -> str | None:
    """The ``queue`` meta value, when set; TypeError unless it is a non-empty string."""
    queue = meta.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise TypeError(f"meta 'queue' must be a non-empty string, got {queue!r}")
    return queue


def _meta_value(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"meta {key!r} must be a string, got {lua_type_name(value)}")
    return value or None


def _built(message: Addressed) -> tuple[str, QueueNameParts]:
    meta = message.meta
    return _named(_meta_value(meta, "campaign"), _meta_value(meta, "tenant"),
                  message.recipient.domain, _meta_value(meta, "routing_domain"))


# Every message received or recovered is named, and a node sees the same few thousand
# queues again and again: each name is built once. Bounded (least recently used go).
@functools.lru_cache(maxsize=8192)
def _named(
    campaign: str | None, tenant: str | None, domain: str, routing_domain: str | None
) -> tuple[str, QueueNameParts]:
    parts = QueueNameParts(campaign, tenant, domain, routing_domain)
    return str(parts), parts


def message_queue_name(message: Addressed) -> str:
    """The scheduled queue ``message`` belongs in: meta ``queue``, else built from meta.

    Raises TypeError naming the meta key when ``queue``/``tenant``/``campaign``/
    ``routing_domain`` holds something other than a string.
    """
    named = _named_by_meta(message.meta)
    return named if named is not None else _built(message)[0]


def message_queue(message: Addressed) -> tuple[str, QueueNameParts]:
    """The scheduled queue's name and parts, for ``get_queue_config``: the parts are
    the meta values themselves, unless meta ``queue`` names the queue (then its parts
    are parsed from that name, as KumoMTA does). Errors as :func:`message_queue_name`.
    """
    named = _named_by_meta(message.meta)
    if named is not None:
        return named, parse_queue_name(named)
    return _built(message)
