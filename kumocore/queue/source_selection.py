"""Source selection rates (IP warm-up): KumoMTA's ``source_selection_rate`` and
``additional_source_selection_rates`` of ``kumo.make_egress_path``.

When the weighted round robin of a pool (:mod:`kumocore.queue.pool`) picks a source for a
message, the egress path configuration of that source and the message's site says how
often the source may be picked for that site. The throttles are:

* ``source_selection_rate``, named ``kumomta.source_selection_rate.<ready queue>.<source>``
  (the ready queue name, ``source->site@smtp_client``, as KumoMTA names it), so each
  (source, site) path has its own budget;
* each entry of ``additional_source_selection_rates``, named by its map key alone, so
  that paths whose configurations use the same name share one budget (a limit of a
  source across sites or a provider: the shaping helper's
  ``provider_source_selection_rate``).

They are asked smallest rate first (KumoMTA ranks them by ``limit / period`` in
millionths; a tie keeps ``source_selection_rate`` before the map, in map order) so that a
larger budget is not spent on a selection a smaller one refuses. Each admitted throttle
counts one selection; the first refusal makes the source ineligible for this message,
and the router asks the rotation for the next candidate without it. The throttles live in
the node's throttle store (shared by workers and, with Redis, by nodes; ``local:`` keeps
one to the process), like the path's ``max_message_rate``.

A path with neither option costs one test per routed message (:func:`has_selection_rates`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kumocore.throttle.store import rate_key

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.throttle.spec import ThrottleSpec
    from kumocore.throttle.store import ThrottleStore

__all__ = ["SELECTION_RATE", "has_selection_rates", "selection_admitted", "selection_throttles"]

#: The name prefix of a path's own ``source_selection_rate`` throttle (KumoMTA's).
SELECTION_RATE = "kumomta.source_selection_rate"

#: How a throttle store is found for a spec's ``force_local`` (``EgressShared.throttle_store``).
StoreFor = Callable[[bool], "ThrottleStore"]


def has_selection_rates(config: EgressPathConfig) -> bool:
    """Whether the path limits how often its source is selected."""
    return config.source_selection_rate is not None or bool(
        config.additional_source_selection_rates
    )


def _rank(throttle: tuple[str, ThrottleSpec]) -> int:
    # KumoMTA's sort key: events per second in millionths, truncated to an integer.
    spec = throttle[1]
    return int(spec.limit / spec.period * 1_000_000.0)


def selection_throttles(
    config: EgressPathConfig, ready_queue: str, source: str
) -> list[tuple[str, ThrottleSpec]]:
    """The (name, spec) of each selection throttle of the path, smallest rate first."""
    throttles: list[tuple[str, ThrottleSpec]] = []
    if config.source_selection_rate is not None:
        throttles.append((f"{SELECTION_RATE}.{ready_queue}.{source}", config.source_selection_rate))
    throttles.extend(config.additional_source_selection_rates.items())
    throttles.sort(key=_rank)  # stable: equal rates keep their order
    return throttles


async def selection_admitted(
    store_for: StoreFor, config: EgressPathConfig, ready_queue: str, source: str
) -> bool:
    """Ask the path's selection throttles, smallest first: True when every one admits a
    selection (each then counts it), False at the first that refuses (the larger ones
    are not asked, so not charged)."""
    if not has_selection_rates(config):
        return True
    for name, spec in selection_throttles(config, ready_queue, source):
        result = await store_for(bool(spec.force_local)).throttle(rate_key(name, spec), spec)
        if result.throttled:
            return False
    return True
