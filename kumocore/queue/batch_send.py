"""Sending a message with several recipients over an SMTP session (KumoMTA's
``deliver_message`` for a batch).

At most the path's ``max_recipients_per_batch`` recipients go into one transaction
(:meth:`~kumocore.delivery.client.SmtpClientConnection.send_batch`); each recipient's
reply is rewritten by ``smtp_client_rewrite_delivery_status`` when it is not a success
and classified as a whole message's reply would be (:mod:`kumocore.queue.batch_outcomes`).
Recipients delivered or bounced leave the message; those with a transient failure stay
on it, behind the ones not sent yet (the excess beyond ``max_recipients_per_batch``).

Then, as in KumoMTA:

* no recipient left: the message leaves the spool once its records are written;
* the excess, and recipients the MX refused only for their number (not logged), go out
  at once: the message is put first in line, and the session takes it next as a
  transaction of its own, so ``max_deliveries_per_connection``, the message rate, a
  suspension and a shutdown apply between two transactions of a batch. "Only for their
  number", after the first recipient: any ``4.5.3``; a bare ``452`` or ``552`` that the
  bounce classifier calls ``TooManyRecipients``, or leaves ``Uncategorized`` (or in a
  class of the policy's own) for a recipient not in the message's transaction before
  on this session (:func:`~kumocore.queue.batch_groups.classify_too_many`);
* with ``try_next_host_on_transport_error``, a failure that says nothing about the
  message (a ``421``, a broken session: :func:`~kumocore.queue.reconnect.retry_on_next_host`)
  sends the recipients left on the session's next connection, the attempt not counted;
* otherwise the message is rescheduled with the recipients left, its meta record saved
  with them first and its attempt counted once.

kumocore's bound, which KumoMTA does not have: a message goes out again at once only
when it still has excess recipients never tried on this path since it last waited, or
when the transaction delivered or bounced some (so an MX answering ``452 4.5.3`` to
every second recipient and ``451`` to the first cannot keep a session in a loop, nor
can ``max_deliveries_per_connection = 1`` turn one into a reconnect loop):
:class:`~kumocore.queue.batch_groups.BatchMemory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kumocore.queue.batch_groups import (
    TRANSIENT,
    Group,
    TooMany,
    classify_too_many,
    group_outcomes,
    kind_of,
)
from kumocore.queue.dispatchers import running
from kumocore.queue.reconnect import retry_on_next_host
from kumocore.queue.rewrite_status import rewrite_delivery_status

if TYPE_CHECKING:
    from kumocore.delivery.client import SmtpClientConnection
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.queue.path import EgressPath
    from kumocore.queue.reconnect import ConnectionPlan


@dataclass(frozen=True, slots=True)
class Body:
    """The message's bytes as the session loaded them (``SmtpEgressPath._send``)."""

    data: bytes
    crlf_clean: bool = False
    head: bytes = b""
    no_dot_lines: bool = False


@dataclass(frozen=True, slots=True)
class _Round:
    """What one transaction settled: the records to write, the recipients left (the
    excess first, as KumoMTA orders them) and whether they go out at once."""

    groups: list[Group]
    left: list[str]
    again: bool


async def send_batches(
    path: EgressPath, conn: SmtpClientConnection, message: Message, plan: ConnectionPlan,
    body: Body,
) -> None:
    """Send one transaction of ``message`` (more than one recipient) over ``conn``; see
    the module doc."""
    memory = path.batch_memory
    session = running().session_id
    recipients = [str(recipient) for recipient in message.recipients]
    limit = path.config.max_recipients_per_batch
    chunk, excess = recipients[:limit], recipients[limit:]
    running().enter_phase("DeliveringMessage", f"send msg with {len(chunk)} recip(s)")
    responses = await conn.send_batch(
        str(message.sender), chunk, body.data, crlf_clean=body.crlf_clean, head=body.head,
        no_dot_lines=body.no_dot_lines)
    responses = await _rewritten(path, message, responses)
    outcomes = path.shared.outcomes
    verdicts = [await classify_too_many(response, outcomes.journal.classify)
                for response in responses]
    kinds = [kind_of(response, verdict) for response, verdict in zip(
        responses, verdicts, strict=True)]
    last = memory.last(message.id, session)
    memory.remember(message.id, session, recipients, chunk)
    done = _settle(chunk, excess, responses, kinds, verdicts, memory.tried(message.id), last,
                   conn.in_step())
    if done.left:
        message.set_recipient_list(done.left)
    if not done.left or (not done.again and not _next_host(path, plan, responses, kinds)):
        memory.forget(message.id)
        outcomes.batch(path, message, done.groups, conn.peer, conn.source_address,
                       conn.session, left=bool(done.left))
        return
    outcomes.count_batch(path, done.groups)
    tickets = await outcomes.record_batch(path, message, done.groups, conn.peer,
                                          conn.source_address, conn.session)
    # Before it goes out again (next transaction or next host): a restart must not
    # send to the recipients just delivered or bounced, once their records are
    # written (:meth:`~kumocore.queue.batch_outcomes.BatchOutcomes.written`).
    if not await outcomes.written(message, tickets):
        return  # shutting down: the spool keeps the recipients it had
    await path.shared.store.save_meta(message)
    if not done.again:  # try_next_host_on_transport_error: the next connection
        conn.abort()
    # First in line: the session takes it next, as a transaction of its own (KumoMTA's
    # dispatcher does the same), so max_deliveries_per_connection, the message rate, a
    # suspension and a shutdown apply between two transactions of a batch.
    path.put_back([message])


def _settle(
    chunk: list[str], excess: list[str], responses: list[Response], kinds: list[str],
    verdicts: list[TooMany], tried: set[str], last: frozenset[str], in_step: bool,
) -> _Round:
    """The outcome of one transaction for ``chunk`` (see the module doc)."""
    # Refused for their number: never the first recipient, or one sent alone. A bare
    # 452 or 552 the classifier left open may also mean a full mailbox: as KumoMTA, it
    # counts as "too many" only for a recipient not in the message's transaction before
    # on this session. By position: a repeated address (a client may RCPT one twice) can
    # be accepted once and refused as too many once, and the accepted one must be logged.
    crowded = {i for i, verdict in enumerate(verdicts)
               if i and (verdict is TooMany.YES
                         or (verdict is TooMany.MAYBE and chunk[i] not in last))}
    left = excess + [name for name, kind in zip(chunk, kinds, strict=True) if kind == TRANSIENT]
    settled = any(kind != TRANSIENT for kind in kinds)
    again = bool(left) and in_step and (
        any(name not in tried for name in excess) or (bool(crowded) and settled))
    # Those refused for their number are not logged when they go out at once.
    logged = [i for i in range(len(chunk)) if not (again and i in crowded)]
    groups = group_outcomes([chunk[i] for i in logged], [responses[i] for i in logged],
                            [kinds[i] for i in logged])
    return _Round(groups, left, again)


def _next_host(
    path: EgressPath, plan: ConnectionPlan, responses: list[Response], kinds: list[str]
) -> bool:
    """``try_next_host_on_transport_error``: whether a transient reply says nothing
    about the message, and the session may send it on its next connection."""
    config = path.config
    if not config.try_next_host_on_transport_error:
        return False
    if not any(kind == TRANSIENT and retry_on_next_host(response)
               for response, kind in zip(responses, kinds, strict=True)):
        return False
    return plan.retry_now(config.reconnect_strategy)


async def _rewritten(
    path: EgressPath, message: Message, responses: list[Response]
) -> list[Response]:
    """Each refusal as ``smtp_client_rewrite_delivery_status`` rewrites it (the policy
    is asked once per distinct reply of the transaction)."""
    if all(response.is_success for response in responses):
        return responses
    shared = path.shared
    queue = shared.queue_of(message)
    queue_name = message.queue_name() if queue is None else queue.name
    memo: dict[Response, Response] = {}
    rewritten = []
    for response in responses:
        if not response.is_success and response not in memo:
            memo[response] = await rewrite_delivery_status(
                shared.hooks, queue_name, message, response)
        rewritten.append(memo.get(response, response))
    return rewritten
