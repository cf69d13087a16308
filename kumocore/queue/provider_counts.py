"""KumoMTA's delivery outcomes by label, for ``/metrics``:
``total_messages_{delivered,transfail,fail}`` by ``service`` (the path's protocol,
``smtp_client``, and the path itself, ``smtp_client:<ready queue>``: summing both counts
each attempt twice, as in KumoMTA), ``..._by_provider`` (label ``provider``) and
``..._by_provider_and_source`` (labels ``provider``, ``source``, ``pool``).

As KumoMTA's ready queues label them, the provider of an attempt is its egress path's
``provider_name`` (the shaping helper's ``[provider]`` blocks set it), or the path's site
name when the path names none; the pool is the message's scheduled queue's
``egress_pool`` (``unspecified`` without one). Only attempts over an egress path count,
as in KumoMTA: an expiration or an administrative bounce is logged by the scheduled
queue, not by a ready queue. A delivery (``Delivery``, or ``XferOut`` for a message
moved to another node) counts as delivered, a ``TransientFailure`` as transfail, a
``Bounce`` as fail; a record about several recipients of a batch counts each of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumocore.capped_keys import capped_key
from kumocore.queue.watchdog import service

if TYPE_CHECKING:
    from kumocore.queue.egress import PathView

__all__ = [
    "MAX_PATHS",
    "MAX_PROVIDER_KEYS",
    "OTHER",
    "OUTCOMES",
    "ProviderCounts",
    "provider_of",
]

#: Paths whose own outcome counts are kept at once.
MAX_PATHS = 10_000
#: Providers (and provider, source, pool triples) counted apart, per outcome. A provider
#: is a site name where no ``provider_name`` applies, and a node sending to millions of
#: domains meets that many sites: past the bound new ones count under :data:`OTHER`, so
#: no count is lost and a series never goes backwards (as the scrape's series cap does).
MAX_PROVIDER_KEYS = 10_000
#: The label of everything counted past a bound.
OTHER = "other"
#: The (provider, source, pool) key of every triple counted past the bound.
_OTHER_TRIPLE = (OTHER, OTHER, OTHER)

#: The outcome of each record kind that counts, as KumoMTA's metric names say it.
OUTCOMES = {"Delivery": "delivered", "XferOut": "delivered", "TransientFailure": "transfail",
            "Bounce": "fail"}


def provider_of(path: PathView) -> str:
    """The provider label of ``path``: its ``provider_name``, else its site name."""
    return path.config.provider_name or path.key.site


class ProviderCounts:
    """The counters, by outcome (``delivered``, ``transfail``, ``fail``)."""

    __slots__ = ("by_path", "by_protocol", "by_provider", "by_provider_and_source")

    def __init__(self) -> None:
        outcomes = sorted(set(OUTCOMES.values()))
        #: By protocol kind (``smtp_client``, ``lua``): kept for the node's life.
        self.by_protocol: dict[str, dict[str, int]] = {o: {} for o in outcomes}
        #: By path service (``smtp_client:<ready queue>``): forgotten past
        #: :data:`MAX_PATHS` paths (KumoMTA prunes these series too), and read only for
        #: the paths that still exist.
        self.by_path: dict[str, dict[str, int]] = {o: {} for o in outcomes}
        self.by_provider: dict[str, dict[str, int]] = {o: {} for o in outcomes}
        #: Keyed ``(provider, source, pool)``.
        self.by_provider_and_source: dict[str, dict[tuple[str, str, str], int]] = {
            o: {} for o in outcomes}

    def count(self, kind: str, path: PathView | None, pool: str, number: int = 1) -> None:
        """``number`` recipients' attempt of record ``kind`` over ``path`` (nothing for a
        kind that does not count, or without a path)."""
        outcome = OUTCOMES.get(kind)
        if outcome is None or path is None:
            return
        protocol = path.key.protocol_kind
        by_protocol = self.by_protocol[outcome]
        by_protocol[protocol] = by_protocol.get(protocol, 0) + number
        by_path = self.by_path[outcome]
        label = service(path)
        if label not in by_path and len(by_path) >= MAX_PATHS:
            by_path.clear()  # a flood of one-off paths: their counts start again
        by_path[label] = by_path.get(label, 0) + number
        # A known key costs one lookup and the store; a new one is capped first. A
        # provider past the cap is OTHER in its (provider, source, pool) key too.
        provider = provider_of(path)
        counts = self.by_provider[outcome]
        total = counts.get(provider)
        if total is None:
            provider = capped_key(counts, provider, MAX_PROVIDER_KEYS, OTHER)
            total = counts.get(provider, 0)
        counts[provider] = total + number
        key = (provider, path.key.source, pool)
        by_source = self.by_provider_and_source[outcome]
        total = by_source.get(key)
        if total is None:
            key = capped_key(by_source, key, MAX_PROVIDER_KEYS, _OTHER_TRIPLE)
            total = by_source.get(key, 0)
        by_source[key] = total + number
