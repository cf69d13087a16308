"""A batch's outcomes, recipient by recipient: which record each reply makes, whether
it says the transaction had recipients enough, the recipients that share one record
(KumoMTA logs one record per distinct reply and outcome), and what a path remembers of
a batch between its transactions.

Below the queue's other modules (it imports none of them), so that the egress
protocols, the outcomes, the path and the SMTP session can all name these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from kumocore.mail.bounce_classes import (
    PREDEFINED_BOUNCE_CLASSES,
    TOO_MANY_RECIPIENTS,
    UNCATEGORIZED,
)

if TYPE_CHECKING:
    from kumocore.logs.journal import Classifier
    from kumocore.mail.response import Response


DELIVERY, BOUNCE, TRANSIENT = "Delivery", "Bounce", "TransientFailure"


@dataclass(frozen=True, slots=True)
class Group:
    """The recipients of a batch that got the same reply with the same outcome."""

    kind: str  # DELIVERY, BOUNCE or TRANSIENT
    response: Response
    recipients: tuple[str, ...]


def out_of_step(response: Response) -> bool:
    """A reply that says the session lost step with the MX rather than anything about
    the message: a ``3xx`` (no final answer to a transaction has one) or ``503`` (bad
    sequence of commands). As KumoMTA classifies them: a TransientFailure, retried,
    never a bounce."""
    return 300 <= response.code < 400 or response.code == 503


class TooMany(Enum):
    """Whether a refusal says the transaction has recipients enough (KumoMTA's
    ``IsTooManyRecipients``)."""

    NO = "no"
    MAYBE = "maybe"  # a bare 452 or 552: "too many", or a full mailbox
    YES = "yes"


def too_many_recipients(response: Response) -> TooMany:
    """What a reply alone says (RFC 5321 4.5.3.1.10): to ``RCPT TO``, any ``4.5.3`` is
    "too many" whatever the code (IANA registers ``451 4.5.3``); a ``452`` or ``552``
    without an enhanced code may be (old servers meant it by a 552)."""
    if not (response.command or "").startswith("RCPT"):
        return TooMany.NO
    enhanced = response.enhanced_code
    if enhanced is None:
        return TooMany.MAYBE if response.code in (452, 552) else TooMany.NO
    return TooMany.YES if (enhanced.klass, enhanced.subject, enhanced.detail) == (
        4, 5, 3) else TooMany.NO


async def classify_too_many(response: Response, classify: Classifier) -> TooMany:
    """:func:`too_many_recipients`, a ``MAYBE`` settled by the bounce classifier as
    KumoMTA settles it: ``TooManyRecipients`` makes it ``YES``, any other predefined
    class but ``Uncategorized`` ``NO``; a class of the policy's own leaves it ``MAYBE``."""
    verdict = too_many_recipients(response)
    if verdict is not TooMany.MAYBE:
        return verdict
    bounce_class = await classify(response)
    if bounce_class == TOO_MANY_RECIPIENTS:
        return TooMany.YES
    if bounce_class in PREDEFINED_BOUNCE_CLASSES and bounce_class != UNCATEGORIZED:
        return TooMany.NO
    return TooMany.MAYBE


def is_retried(response: Response) -> bool:
    """Whether a failure makes a ``TransientFailure`` rather than a ``Bounce``, before
    any classifier is asked: a 4xx, a reply out of step (:func:`out_of_step`), or a
    bare ``552`` to ``RCPT TO`` (RFC 5321 4.5.3.1.10: clients should take it as
    temporary, as KumoMTA does since 2025.12.02). ``552 5.2.2`` still bounces."""
    code = response.code
    return (400 <= code < 500 or out_of_step(response)
            or too_many_recipients(response) is not TooMany.NO)  # fmt: skip


def kind_of(response: Response, too_many: TooMany | None = None) -> str:
    """The record a reply makes, as :meth:`kumocore.queue.outcomes.Outcomes.handle`
    decides for a whole message; ``too_many``: :func:`classify_too_many`'s verdict
    (a bare ``552`` the classifier calls e.g. ``QuotaIssues`` bounces)."""
    if response.is_success:
        return DELIVERY
    if too_many is None:
        return TRANSIENT if is_retried(response) else BOUNCE
    if too_many is not TooMany.NO or 400 <= response.code < 500 or out_of_step(response):
        return TRANSIENT
    return BOUNCE


def group_outcomes(
    recipients: Sequence[str], responses: Sequence[Response], kinds: Sequence[str]
) -> list[Group]:
    """One :class:`Group` per distinct (reply, outcome), in the order first seen."""
    members: dict[tuple[Response, str], list[str]] = {}
    for recipient, response, kind in zip(recipients, responses, kinds, strict=True):
        members.setdefault((response, kind), []).append(recipient)
    return [Group(kind, response, tuple(names)) for (response, kind), names in members.items()]


@dataclass(slots=True)
class _Remembered:
    session: object  # the session whose transaction ``last`` names
    last: frozenset[str]
    tried: set[str] = field(default_factory=set)


class BatchMemory:
    """What a path remembers of each batch between its transactions.

    ``last``: the message's recipients when its previous transaction on the same session
    started (KumoMTA's ``recips_last_txn``: a bare ``452`` to one of them may mean a full
    mailbox, not "too many"). ``tried``: every recipient sent in a transaction of this
    path since the batch last waited for a retry, whatever the session: kumocore's bound
    that lets a batch go out again at once only for recipients never tried
    (:mod:`kumocore.queue.batch_send`). A batch sent to wait between two transactions
    (its next connection failed, a suspension, an operator's abort or bounce, shutdown)
    is forgotten by the path then, so its retry starts afresh. An entry holds the
    message's recipients twice over (about 115 bytes a name): at most :attr:`LIMIT`
    batches are remembered, a message that left the path another way (an expiry)
    forgotten oldest first.
    """

    LIMIT = 1024
    __slots__ = ("_batches",)

    def __init__(self) -> None:
        self._batches: dict[str, _Remembered] = {}

    def __len__(self) -> int:
        return len(self._batches)

    def last(self, message_id: str, session: object) -> frozenset[str]:
        known = self._batches.get(message_id)
        return known.last if known is not None and known.session == session else frozenset()

    def tried(self, message_id: str) -> set[str]:
        known = self._batches.get(message_id)
        return known.tried if known is not None else set()

    def remember(
        self, message_id: str, session: object, recipients: Sequence[str],
        chunk: Sequence[str],
    ) -> None:
        """A transaction of ``message_id`` (then holding ``recipients``) sent ``chunk``."""
        known = self._batches.pop(message_id, None)
        tried = known.tried if known is not None else set()
        tried.update(chunk)
        self._batches[message_id] = _Remembered(session, frozenset(recipients), tried)
        while len(self._batches) > self.LIMIT:
            del self._batches[next(iter(self._batches))]

    def forget(self, message_id: str) -> None:
        """The batch is done, or waits for its retry: a retry starts afresh."""
        self._batches.pop(message_id, None)
