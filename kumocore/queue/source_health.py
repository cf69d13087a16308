"""Egress source health: KumoMTA's ``suspend_when_unplumbed`` and
``suspend_when_proxy_unhealthy`` options of ``kumo.make_egress_source``.

A failed connection attempt whose cause says the *source* is broken rather than the
destination (:mod:`kumocore.delivery.source_failure`: ``Unplumbed``, the local address
cannot be bound; ``ProxyUnhealthy``, the proxy cannot be reached or will not send from
the source's address) is recorded here against the source. Every such failure counts on
``egress_source_connection_failures_total``; when the source has the matching rule, its
``trigger`` (``'Immediate'``, or ``{Threshold = 'N/period'}``: N failures within the
rolling window) may suspend the source for the rule's ``duration``.

While suspended, a source is left out of its pools' rotation (kumocore.queue.routing_paths;
every source suspended: the message waits until the earliest suspension ends), its
connection attempts fail at once, and the messages already queued on its paths go back to
their scheduled queues to be routed again (kumocore.queue.session). The state is this
process's only, as in KumoMTA: no coordination between workers or nodes.

A node without suspensions pays one test of an empty dict per routed message.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kumocore.mail.internal_responses import no_eligible_sources, no_sources
from kumocore.queue.errors import RoutingError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from kumocore.config.egress import EgressSource
    from kumocore.queue.pool import WeightedRoundRobin
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.throttle.spec import ThrottleSpec

log = structlog.get_logger("kumocore.source_health")

#: KumoMTA's failure kinds (the ``kind`` and ``reason`` label values of its metrics);
#: kumocore.delivery.source_failure tells them.
UNPLUMBED = "Unplumbed"
PROXY_UNHEALTHY = "ProxyUnhealthy"
#: The source option whose rule acts on each kind of failure.
_RULE_OF = {UNPLUMBED: "suspend_when_unplumbed", PROXY_UNHEALTHY: "suspend_when_proxy_unhealthy"}

#: A Threshold window is counted in at most this many buckets (KumoMTA's resolution),
#: so a large ``N`` or a long period costs no more memory than a small one.
WINDOW_BUCKETS = 60


@dataclass(slots=True)
class Suspension:
    expires: float  # time.monotonic()
    reason: str


class FailureWindow:
    """Failures in the last ``period`` seconds, counted per bucket of
    ``period / WINDOW_BUCKETS`` seconds (at least one second)."""

    __slots__ = ("buckets", "period", "span", "width")

    def __init__(self, period: float) -> None:
        self.period = period
        self.width = max(1.0, period / WINDOW_BUCKETS)
        self.span = math.ceil(period / self.width)  # buckets that cover the window
        self.buckets: collections.deque[list[int]] = collections.deque()

    def add(self, now: float) -> int:
        """Count one failure at ``now``; the failures within the window."""
        index = int(now // self.width)
        buckets = self.buckets
        while buckets and buckets[0][0] <= index - self.span:
            buckets.popleft()
        if buckets and buckets[-1][0] == index:
            buckets[-1][1] += 1
        else:
            buckets.append([index, 1])
        return sum(count for _, count in buckets)


class SourceHealth:
    """The suspensions of one process's egress sources, and their metrics."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: Source name → its suspension (expired ones until pruned).
        self.suspended: dict[str, Suspension] = {}
        #: (source, kind) → classified failures / transitions into suspension.
        self.failures: collections.Counter[tuple[str, str]] = collections.Counter()
        self.suspensions: collections.Counter[tuple[str, str]] = collections.Counter()
        #: (source, reason) → 1 while suspended for that reason, 0 once it ended.
        self.gauge: dict[tuple[str, str], int] = {}
        self._windows: dict[tuple[str, str], FailureWindow] = {}
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ queries
    def remaining(self, name: str) -> float | None:
        """Seconds until source ``name``'s suspension ends; None when it is not suspended."""
        if not self.suspended:
            return None
        entry = self.suspended.get(name)
        if entry is None:
            return None
        left = entry.expires - self._clock()
        if left > 0:
            return left
        self._clear(name, entry)
        return None

    def suspended_names(self) -> set[str]:
        """The sources suspended now."""
        self.prune()
        return set(self.suspended)

    def earliest_end(self, names: Iterable[str]) -> float | None:
        """Seconds until the first of ``names``' suspensions ends (None: none suspended)."""
        left = [r for r in map(self.remaining, names) if r is not None]
        return min(left, default=None)

    # ------------------------------------------------------------------ events
    def record(self, source: EgressSource, kind: str) -> None:
        """A connection attempt from ``source`` failed for a reason of ``kind``."""
        name = source.name
        self.failures[(name, kind)] += 1
        rule = getattr(source, _RULE_OF[kind])
        if rule is None:
            return
        trigger: str | ThrottleSpec = rule.trigger
        if isinstance(trigger, str) or self._threshold_met(name, kind, trigger):
            self._suspend(name, kind, float(rule.duration))

    def _threshold_met(self, name: str, kind: str, spec: ThrottleSpec) -> bool:
        key = (name, kind)
        window = self._windows.get(key)
        if window is None or window.period != spec.period:  # new, or the rule changed
            window = self._windows[key] = FailureWindow(spec.period)
        return window.add(self._clock()) >= spec.limit

    def _suspend(self, name: str, reason: str, duration: float) -> None:
        now = self._clock()
        prior = self.suspended.get(name)
        self.suspended[name] = Suspension(now + duration, reason)
        self._wake_at(duration)
        if prior is not None and prior.expires > now and prior.reason == reason:
            log.debug("egress source suspension extended", source=name, reason=reason,
                      duration=duration)  # fmt: skip
            return  # the same suspension, longer: not a new transition
        if prior is not None and prior.reason != reason:
            self.gauge[(name, prior.reason)] = 0
        self.gauge[(name, reason)] = 1
        self.suspensions[(name, reason)] += 1
        log.warning("egress source auto-suspended", source=name, reason=reason,
                    duration=duration)  # fmt: skip

    def _clear(self, name: str, entry: Suspension) -> None:
        del self.suspended[name]
        self.gauge[(name, entry.reason)] = 0
        log.info("egress source auto-suspension cleared", source=name, reason=entry.reason)

    def prune(self) -> None:
        """End the suspensions that are over (their gauge goes to 0, an INFO line)."""
        now = self._clock()
        for name, entry in list(self.suspended.items()):
            if entry.expires <= now:
                self._clear(name, entry)

    def _wake_at(self, delay: float) -> None:
        # Clear on time even when nothing asks about the source (the gauge, the log).
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a unit test): cleared when next asked
        timer = self._timer
        if timer is not None and timer.when() <= loop.time() + delay:
            return
        if timer is not None:
            timer.cancel()
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.prune()
        left = [entry.expires - self._clock() for entry in self.suspended.values()]
        if left:  # the loop's timer may fire a clock tick early
            self._wake_at(max(0.001, min(left)))


# ---------------------------------------------------------------------- /metrics
_FAILURES_HELP = (
    "Connection failures of an egress source classified as Unplumbed or "
    "ProxyUnhealthy, whether or not a suspend_when_* rule is configured."
)
_SUSPENSIONS_HELP = "Transitions of an egress source into auto-suspension, by rule."
_SUSPENDED_HELP = "1 while an egress source is auto-suspended (by rule), else 0."


def source_health_metrics(health: SourceHealth) -> Iterator[Metric]:
    """KumoMTA's three source-health metrics (labels ``source`` and ``kind``/``reason``)."""
    health.prune()
    failures = CounterMetricFamily("egress_source_connection_failures_total", _FAILURES_HELP,
                                   labels=["source", "kind"])  # fmt: skip
    for (source, kind), count in health.failures.items():
        failures.add_metric([source, kind], count)
    yield failures
    transitions = CounterMetricFamily("egress_source_health_suspensions_total",
                                      _SUSPENSIONS_HELP, labels=["source", "reason"])  # fmt: skip
    for (source, reason), count in health.suspensions.items():
        transitions.add_metric([source, reason], count)
    yield transitions
    gauge = GaugeMetricFamily("egress_source_health_suspended", _SUSPENDED_HELP,
                              labels=["source", "reason"])  # fmt: skip
    for (source, reason), value in health.gauge.items():
        gauge.add_metric([source, reason], value)
    yield gauge


# ---------------------------------------------------------------------- routing
def first_healthy(queue: ScheduledQueue, rotation: WeightedRoundRobin, health: SourceHealth) -> str:
    """The next source of the pool's rotation that is not suspended. None left: KumoMTA's
    ``no sources ... are eligible`` TransientFailure, retried when the earliest suspension
    of the pool ends (:class:`~kumocore.queue.errors.RoutingError`'s ``retry_after``)."""
    suspended = health.suspended
    excluded = [
        name
        for name, _ in rotation.entries
        if name in suspended and health.remaining(name) is not None
    ]
    source = rotation.next(excluded)
    if source is not None:
        return source
    waiting = health.earliest_end(excluded)
    if waiting is None:  # every weight is zero: nothing to wait for
        raise RoutingError(no_sources(queue.name, queue.pool_name))
    raise RoutingError(no_eligible_sources(queue.name, queue.pool_name), retry_after=waiting)
