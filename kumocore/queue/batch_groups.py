"""A batch's outcomes, recipient by recipient: which record each reply makes, and the
recipients that share one (KumoMTA logs one record per distinct reply and outcome).

Below the queue's other modules (it imports none of them), so that the egress
protocols, the outcomes and the SMTP session can all name :class:`Group`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def is_retried(response: Response) -> bool:
    """Whether a failure makes a ``TransientFailure`` rather than a ``Bounce``: a 4xx, a
    reply out of step (:func:`out_of_step`), or a ``552`` without an enhanced code to
    ``RCPT TO``: RFC 5321 4.5.3.1.10 says old servers meant "too many recipients" by it
    and clients should take it as temporary, as KumoMTA does since 2025.12.02 (KumoMTA
    also asks its bounce classifier; kumocore does not). ``552 5.2.2`` still bounces."""
    code = response.code
    return (400 <= code < 500 or out_of_step(response)
            or (code == 552 and response.enhanced_code is None
                and (response.command or "").startswith("RCPT")))  # fmt: skip


def kind_of(response: Response) -> str:
    """The record a reply makes, as :meth:`kumocore.queue.outcomes.Outcomes.handle`
    decides for a whole message."""
    if response.is_success:
        return DELIVERY
    if is_retried(response):
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
