"""What the operator's bounce and suspension rules do to the queues.

A bounce rule bounces every matching message the queues hold now (``AdminBounce``, logged
unless the rule says not to) and, while it is active, each matching message inserted
later; messages already in flight finish their attempt. A suspension holds the matching
scheduled queues; cancelling it does not wake the messages it deferred. The rules
themselves (matching, expiry, listing) are :mod:`kumocore.queue.admin`.

The admin half of :class:`kumocore.queue.manager.QueueManager` (its base class): the
manager owns the messages and their queues, this applies the rules to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumocore.mail import internal_responses
from kumocore.node.stepwise import Steps, run_whole

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.queue.admin import AdminRules, QueueRule
    from kumocore.queue.egress import PathKey
    from kumocore.queue.outcomes import Outcomes
    from kumocore.queue.path import EgressPath
    from kumocore.queue.queued import Queued
    from kumocore.queue.schedule import ScheduledQueue


#: Messages bounced between two steps of :meth:`QueueAdminActions.bounce_rule_steps`.
_BOUNCES_PER_STEP = 50
#: Queue names matched between two steps of :meth:`QueueAdminActions.matching_queues`.
_QUEUES_PER_STEP = 200


class QueueAdminActions:
    """The admin half of :class:`kumocore.queue.manager.QueueManager` (see the module doc)."""

    if TYPE_CHECKING:  # QueueManager's attributes and helpers, for the type checker only
        admin: AdminRules
        outcomes: Outcomes
        paths: dict[PathKey, EgressPath]
        scheduled: dict[str, ScheduledQueue]
        queued: dict[str, Queued]

        def queue_of(self, message: Message) -> ScheduledQueue | None: ...
        def unschedule(self, message_id: str) -> bool: ...

    __slots__ = ()

    def admin_bounce(
        self, message: Message, rule: QueueRule, response: Response | None = None
    ) -> None:
        """Bounce ``message`` for ``rule`` (``response``: the rule's, when the caller
        made it once for many messages). Its record and its removal from the spool follow
        with the other admin bounces' (:mod:`kumocore.queue.bounce_batches`)."""
        queue = self.queue_of(message)
        queue_name = "" if queue is None else queue.name
        rule.bounced[queue_name] = rule.bounced.get(queue_name, 0) + 1
        self.unschedule(message.id)
        if response is None:
            response = internal_responses.admin_bounce(rule.reason)
        self.outcomes.admin_bounce(message, response, log_it=not rule.suppress_logging)

    def apply_bounce_rule(self, rule: QueueRule) -> None:
        """Bounce every queued message that matches (not ones already in flight)."""
        run_whole(self.bounce_rule_steps(rule))

    def bounce_rule_steps(self, rule: QueueRule) -> Steps[None]:
        """:meth:`apply_bounce_rule` in steps of a few dozen bounces (each is a log
        record: 100,000 of them at once held the event loop 3.8 s). The rule is in force
        first, so a matching message queued meanwhile is bounced as it arrives."""
        self.admin.bounces[rule.id] = rule
        response = internal_responses.admin_bounce(rule.reason)  # one for all (immutable)
        for path in list(self.paths.values()):
            kept = []
            for message in path.drain():  # a ready queue is bounced in one step
                queue = self.queue_of(message)
                if rule.matches("" if queue is None else queue.name):
                    self.admin_bounce(message, rule, response)
                else:
                    kept.append(message)
            path.put_back(kept)
            yield
        for queue in self.matching_queues(rule):
            if queue is None:
                yield
                continue
            for n, message_id in enumerate(list(queue.ids), 1):
                record = self.queued.get(message_id)
                if record is not None and record.waiting:  # still waiting when its turn comes
                    self.admin_bounce(record.message, rule, response)
                if n % _BOUNCES_PER_STEP == 0:
                    yield
            yield

    def matching_queues(self, rule: QueueRule) -> Iterator[ScheduledQueue | None]:
        """The scheduled queues ``rule`` matches (those there are now), and None after
        every :data:`_QUEUES_PER_STEP` looked at: the caller's chance to let the loop
        turn (matching 100,000 queues' names at once held it 165-187 ms)."""
        for n, queue in enumerate(list(self.scheduled.values()), 1):
            if rule.matches(queue.name):
                yield queue
            if n % _QUEUES_PER_STEP == 0:
                yield None

    def cancel_bounce(self, rule_id: str) -> bool:
        """Stop bouncing newly queued messages for rule ``rule_id``."""
        return self.admin.bounces.pop(rule_id, None) is not None

    def add_suspension(self, rule: QueueRule) -> bool:
        """Hold the queues ``rule`` matches (:meth:`AdminRules.add_suspension`)."""
        return self.admin.add_suspension(rule)

    def cancel_suspension(self, rule_id: str) -> bool:
        """End suspension ``rule_id``. As in KumoMTA, the messages it deferred are not
        woken: each stays due at the retry time its TransientFailure gave it."""
        return self.admin.suspensions.pop(rule_id, None) is not None
