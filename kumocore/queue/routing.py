"""From a due message to an egress path: pool → source → MX site → egress path.

The destination is KumoMTA's: the queue name's routing domain, else its domain (so the
``queue`` meta may name a domain, ``[192.0.2.1]``, ``[IPv6:2001:db8::1]`` or
``host:port``). The queue config's ``protocol`` decides the site: the MX site of that
destination, ``mx_list:<entries>`` for an explicit ``mx_list``, or the destination itself
for other protocols; the path (its ready queue) is ``source->site@<protocol suffix>``.
Maildir queues are written directly, without a path (as in KumoMTA); the deferred
injection queue of ``deferred_queue`` listeners has a ready queue of its own
(kumocore.queue.deferred_inject). Which ready queue a message goes to is
:mod:`kumocore.queue.routing_paths`.

The source is the next of the pool's weighted round robin; when the egress path of that
source limits how often it may be selected (``source_selection_rate``,
``additional_source_selection_rates``: kumocore.queue.source_selection) and the limit is
spent, the next candidate is tried without it, as KumoMTA's ``select_and_insert`` does
(for SMTP and ``custom_lua`` queues); with none left the message gets KumoMTA's
TransientFailure and waits for its retry. A path with no selection rate costs two
attribute tests.

Any lookup that fails (an unknown pool or source, a policy error in
``get_egress_path_config``, a DNS failure) is logged and the message stays queued for a
later attempt; only a null MX is final.

Putting a message in its ready queue is timed (KumoMTA's ``ready_queue_insert_latency``):
the SMTP-kind paths' and the deferred injection queue's, not a maildir write or a transfer
hand-over, which have no ready queue here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from kumocore.config.protocols import DeliveryProtocol, MaildirProtocol
from kumocore.mail.internal_responses import expired_due, insert_throttled, queue_suspended
from kumocore.node.latency import Histogram
from kumocore.queue.deferred_inject import (
    DeferredInjectPath,
    DeferredInjectProtocol,
    deferred_path_for,
)
from kumocore.queue.egress_cache import DefinitionCache
from kumocore.queue.errors import RoutingError
from kumocore.queue.generator_inject import GeneratorProtocol, generator_path_for
from kumocore.queue.owners import RouterOwner
from kumocore.queue.pool import WeightedRoundRobin
from kumocore.queue.queue_rate import throttle_queue_rate
from kumocore.queue.routing_paths import PathResolver

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.path import EgressPath
    from kumocore.queue.schedule import ScheduledQueue

log = structlog.get_logger("kumocore.routing")

#: The insert reason of a message ``throttle_insert_ready_queue`` sent back (KumoMTA's).
INSERT_THROTTLED = "ThrottledByThrottleInsertReadyQueue"


class Router(PathResolver):
    """Resolves the egress path of due messages and hands them to ready queues."""

    def __init__(self, manager: RouterOwner) -> None:
        self.manager = manager
        self.hooks = manager.hooks
        # Asked on the first routed message, not per message (~3 µs): the policy and the
        # plugins are registered by then.
        self._throttle_event: bool | None = None
        self._rotations: dict[str, tuple[tuple[tuple[str, int], ...], WeightedRoundRobin]] = {}
        # Kept for their ttl, as KumoMTA keeps them (kumocore.queue.egress_cache).
        self.pools = DefinitionCache(self.hooks.get_egress_pool)
        self.sources = DefinitionCache(self.hooks.get_egress_source)
        #: KumoMTA's ``ready_queue_insert_latency``: each message put in a ready queue.
        self.ready_insert_latency = Histogram()

    async def route(self, message: Message) -> None:
        manager = self.manager
        queue = manager.queue_of(message)
        if queue is None:
            return
        now = time.time()
        if message.created + float(queue.config.max_age) <= now:
            max_age = float(queue.config.max_age)
            manager.outcomes.expire(None, message, expired_due(now - message.created, max_age))
            return
        rule = manager.admin.bounce_rule_for(queue.name)
        if rule is not None:
            manager.admin_bounce(message, rule)
            return
        suspension = manager.admin.suspension_for(queue.name)
        if suspension is not None:
            # As KumoMTA: a TransientFailure that counts an attempt and retries the message
            # on its queue's schedule (it may expire meanwhile), not a silent hold.
            manager.outcomes.transient(None, message, queue_suspended(suspension.reason),
                                       None, None, queue_site=True)  # fmt: skip
            return
        rate = queue.config.max_message_rate
        if rate is not None and await throttle_queue_rate(manager, message, queue, rate):
            manager.delay_counts.rate_throttled(queue.name)
            return
        if await self._throttled(message):
            manager.delay_counts.insert_throttled(queue.name)
            return
        protocol = queue.config.protocol
        # SMTP queues (no protocol, or smtp's) pay one test for the protocols below.
        if (
            protocol is not None
            and protocol.name != "smtp_client"
            and await self._special(message, queue, protocol)
        ):
            return
        try:
            path = await self._dispatch(message, queue)
        except RoutingError as error:
            if error.retry_after is not None:  # waits for a source's suspension to end
                manager.outcomes.transient(None, message, error.response, None, None,
                                           retry_after=error.retry_after)  # fmt: skip
                return
            manager.outcomes.handle(None, message, error.response, peer=None)
            return
        if queue.site != path.key.site:  # the queue's provider label (queue_providers)
            manager.scheduled_totals.providers.learn_site(queue, path.key.site)
        if path.pool is None:  # as KumoMTA: the pool of the queue that opened it
            path.pool = queue.pool_name
        self._to_ready(path, message, queue)

    def _to_ready(self, path: EgressPath, message: Message, queue: ScheduledQueue) -> None:
        """Put ``message`` in ``path``'s ready queue, timed (``ready_queue_insert_latency``);
        one that waits beyond ``max_ready`` is counted for its scheduled queue."""
        started = time.perf_counter()
        full = path.add(message)
        self.ready_insert_latency.observe(time.perf_counter() - started)
        if full:
            self.manager.delay_counts.ready_full(queue.name)

    async def _special(
        self, message: Message, queue: ScheduledQueue, protocol: DeliveryProtocol
    ) -> bool:
        """Route a message of a protocol that has no ready queue of the SMTP kind (maildir,
        xfer, deferred injection); False for the others (``custom_lua``)."""
        manager = self.manager
        if isinstance(protocol, MaildirProtocol):
            from kumocore.queue.maildir import deliver_to_maildir

            await deliver_to_maildir(manager, message, protocol, queue.name)
            return True
        if protocol.name == "xfer":
            from kumocore.xfer.send import XferProtocol

            assert isinstance(protocol, XferProtocol)
            # Handed over, not awaited: a slow target must not hold a routing task.
            protocol.sender.submit(manager, message, protocol)
            return True
        if isinstance(protocol, DeferredInjectProtocol | GeneratorProtocol):
            try:
                path: DeferredInjectPath = await deferred_path_for(manager, queue.name) \
                    if isinstance(protocol, DeferredInjectProtocol) \
                    else await generator_path_for(manager, queue.name, protocol.generate)
            except RoutingError as error:
                manager.outcomes.handle(None, message, error.response, peer=None)
                return True
            self._to_ready(path, message, queue)
            return True
        return False

    async def _throttled(self, message: Message) -> bool:
        """Run ``throttle_insert_ready_queue``; True when it pushed the message's due time
        into the future (it is then back in its scheduled queue)."""
        if self._throttle_event is None:
            self._throttle_event = self.hooks.implemented("throttle_insert_ready_queue")
        if not self._throttle_event:
            return False
        before = message.due
        try:
            await self.hooks.throttle_insert_ready_queue(message)
        except Exception as exc:
            # A policy bug must not strand the message: it goes on to delivery.
            log.error("throttle_insert_ready_queue failed", id=message.id, error=str(exc))
            return False
        due = message.due
        if due is None or due == before or due <= time.time():
            return False
        manager = self.manager
        queue = manager.queue_of(message)
        response = insert_throttled("" if queue is None else queue.name, due)
        if await manager.delays.requeue(message, response, INSERT_THROTTLED, None):
            return True  # the policy re-bound it
        # As KumoMTA: requeued with no delay of its own, so re-timed with its jitter (the
        # event is asked again within a minute), not left until the time the event set.
        await manager.delays.jittered(message, INSERT_THROTTLED)
        return True
