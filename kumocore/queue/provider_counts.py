"""KumoMTA's delivery outcomes by provider, for ``/metrics``:
``total_messages_{delivered,transfail,fail}_by_provider`` (label ``provider``) and
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

if TYPE_CHECKING:
    from kumocore.queue.egress import PathView

__all__ = ["OUTCOMES", "ProviderCounts", "provider_of"]

#: The outcome of each record kind that counts, as KumoMTA's metric names say it.
OUTCOMES = {"Delivery": "delivered", "XferOut": "delivered", "TransientFailure": "transfail",
            "Bounce": "fail"}


def provider_of(path: PathView) -> str:
    """The provider label of ``path``: its ``provider_name``, else its site name."""
    return path.config.provider_name or path.key.site


class ProviderCounts:
    """The counters, by outcome (``delivered``, ``transfail``, ``fail``)."""

    __slots__ = ("by_provider", "by_provider_and_source")

    def __init__(self) -> None:
        outcomes = sorted(set(OUTCOMES.values()))
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
        provider = provider_of(path)
        counts = self.by_provider[outcome]
        counts[provider] = counts.get(provider, 0) + number
        key = (provider, path.key.source, pool)
        by_source = self.by_provider_and_source[outcome]
        by_source[key] = by_source.get(key, 0) + number
