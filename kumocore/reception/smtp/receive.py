"""DATA: read the message, make its Messages (per recipient or batch), run the policy,
spool, reply.

The steps follow KumoMTA's ``process_data``:

1. Read to ``CRLF.CRLF`` (:mod:`kumocore.reception.smtp.data`): over ``max_message_size`` →
   ``552 5.3.4``; a line over ``line_length_hard_limit`` → ``500 5.2.3``; bare CR/LF →
   ``552 5.6.0`` (``invalid_line_endings = "Deny"``) or normalised (``"Fix"``).
2. ``smtp_server_data`` and ``smtp_server_split_transaction`` see the transaction as one
   message; the recipients are then grouped (:mod:`kumocore.reception.smtp.batches`:
   one per recipient, unless ``batch_handling = 'BatchByDomain'`` or the split event say
   otherwise). One :class:`~kumocore.mail.message.Message` per batch, with the connection
   meta and a ``Received:`` header (``for`` its first recipient);
   ``smtp_server_message_received`` runs for each, within
   ``data_processing_timeout`` (else ``451 4.4.5``). A Rejection of any one message
   refuses the whole transaction with its reply; any other failure is ``421 4.3.0``.
   With ``deferred_queue = true`` the event does not run: each message is queued to
   ``deferred_smtp_inject.kumomta.internal`` instead (:mod:`kumocore.queue.deferred_inject`).
3. The supplemental trace header; the relay decision per message (again, as the policy
   may have changed sender or recipient; for a batch, by its first recipient, as
   KumoMTA: each one passed the RCPT check already); OOB/ARF reports
   (:mod:`kumocore.reception.smtp.reports`).
4. Messages to relay go to :meth:`Intake.accept`. Reply: ``250 OK ids=<id> <id>...``.
   Nothing relayed, reported or discarded into the ``null`` queue:
   ``550 5.7.1 relaying not permitted``.

Mixed intake results (documented in docs/reception.md): when the policy refused or failed
for some message while resolving its queue, nothing of the transaction is spooled and it
is refused with that Rejection (or ``421 4.3.0``), as KumoMTA does. When the spool failed
for some messages, the reply is ``421 4.3.0`` too (KumoMTA says ``250 PARTIAL``, which
would acknowledge the lost ones): the stored ones may then arrive twice, none is lost.

Processing is shielded from cancellation: a client that drops the connection after the
final dot cannot leave a message spooled but not queued.
"""

from __future__ import annotations

import asyncio
import weakref
from time import perf_counter
from typing import TYPE_CHECKING

import structlog

import kumocore.reception.smtp.batches as batches
import kumocore.reception.smtp.data as data_io
import kumocore.reception.smtp.lines as lines
from kumocore.errors import HookError, PolicyError, Rejection
from kumocore.mail.body import SharedBody
from kumocore.mail.headers import split_header_block
from kumocore.mail.ids import new_message_id
from kumocore.mail.message import Message
from kumocore.mail.queue_name import NULL_QUEUE
from kumocore.queue.deferred_inject import DEFERRED_QUEUE_NAME
from kumocore.reception.client_net import client_net
from kumocore.reception.smtp.budget import PEER_SHARE
from kumocore.reception.smtp.relay import check_relaying
from kumocore.reception.smtp.reports import Report, find_report, log_report
from kumocore.reception.trace import (
    add_supplemental_header,
    protocol_name,
    received_header,
    rfc2822_now,
)
from kumocore.spool.commit import Expected, expect_write
from kumocore.trace.bus import SERVER_TRACE
from kumocore.trace.events import trace_disposition

if TYPE_CHECKING:
    from kumocore.reception.intake import Accepted
    from kumocore.reception.smtp.session import EsmtpSession
    from kumocore.reception.smtp.session_state import Transaction

log = structlog.get_logger("kumocore.reception.smtp")


async def data(session: EsmtpSession, arg: str) -> None:
    txn = session.txn
    if txn is None:
        await session.reply(503, "5.5.0 MAIL FROM must be issued first")
        return
    if not txn.recipients:
        await session.reply(503, "5.5.0 RCPT TO must be issued first")
        return
    if arg:
        await session.syntax_error(501, "5.5.4 Syntax: DATA")
        return
    await session.reply(354, "Send body; end with CRLF.CRLF")
    # The writer thread's commit window waits for this body rather than a fixed time.
    expected = expect_write()
    try:
        await _read_and_receive(session, txn, expected)
    finally:
        expected.withdrawn()  # refused, failed or gone (no-op once handed over)
        session.end_transaction(txn)  # answered, or the read was cut short


async def _read_and_receive(session: EsmtpSession, txn: Transaction,
                            expected: Expected) -> None:
    # A client outside relay_hosts holds at most its share (kumocore.reception.smtp.budget).
    trusted = session.config.relay_hosts.contains(session.peer_ip)
    budget = data_budget(session).share(None if trusted else client_net(session.peer_ip))
    config = session.config
    started = perf_counter()
    read = await session.read_data(config.max_message_size, budget, config.data_buffer_size // 2)
    session.txn = None
    read_at = perf_counter()
    if (counts := session.server_counts) is not None:
        counts.read_data.observe(read_at - started)
    if isinstance(read, data_io.DataTooBig):
        await session.reply(552, "5.3.4 message too big")
        return
    if isinstance(read, data_io.DataOverBudget):
        await session.reply(*data_io.OVER_BUDGET_REPLY)
        return
    # The bytes read stay charged to the listener until the transaction is answered.
    held = len(read.message)
    task: asyncio.Future[None] | None = None
    try:
        checked = await _checked_body(session, read)
        if checked is None:
            return
        task = asyncio.ensure_future(_receive(session, txn, *checked, expected))
        task.add_done_callback(lambda _: budget.give(held))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The client went away: processing goes on, and its outcome is only logged.
            task.add_done_callback(_log_orphan_failure)
            raise
    finally:
        if task is None:
            budget.give(held)
        if counts is not None:  # until answered (or the client left meanwhile)
            counts.process_data.observe(perf_counter() - read_at)


#: The DATA budget of each running listener (kept apart from the listener object, which
#: belongs to the server module).
_budgets: weakref.WeakKeyDictionary[object, data_io.DataBudget] = weakref.WeakKeyDictionary()


def data_budget(session: EsmtpSession) -> data_io.DataBudget:
    """The listener-wide budget of DATA bytes held in memory (``max_data_buffered``)."""
    listener = session.listener
    budget = _budgets.get(listener)
    if budget is None:
        limit = listener.config.max_data_buffered
        budget = _budgets[listener] = data_io.DataBudget(limit, peer_limit=max(
            limit // PEER_SHARE, listener.config.max_message_size))
    return budget


async def _checked_body(session: EsmtpSession,
                        read: data_io.Unstuffed) -> tuple[bytes, bool, bool] | None:
    """The (unstuffed) body, whether it is CRLF-clean (every CR and LF in a CRLF pair)
    and whether it is known to have no dot lines; or None once a refusal for its lines or
    headers was sent."""
    config = session.config
    body = read.message
    # Every lookup (X-Tenant...) parses the header block: bound it before anyone does.
    header_end, _ = split_header_block(body)
    if header_end > config.max_header_block_size:
        await session.reply(552, f"5.3.4 header block too big (limit "
                                 f"{config.max_header_block_size} bytes)")
        return None
    long_line, clean = await lines.scan_lines_yielding(body, config.line_length_hard_limit)
    if long_line:
        await session.reply(500, "5.2.3 line too long")
        return None
    if config.invalid_line_endings != "Allow" and not clean:
        if config.invalid_line_endings == "Deny":
            await session.reply(552, "5.6.0 message data must use CRLF for line endings")
            return None
        # Fixed: clean now; a bare LF before a full stop may have become a dot line.
        return await lines.fix_line_endings_yielding(body), True, False
    return body, clean, read.no_dot_lines


def _log_orphan_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("reception after disconnect failed", error=str(task.exception()))


async def _receive(session: EsmtpSession, txn: Transaction, body: bytes, clean: bool,
                   no_dot_lines: bool, expected: Expected) -> None:
    """Process one transaction's body (shielded from the client going away). ``expected``
    arrives just before the spool write; every other way out reaches :func:`data`'s
    ``finally`` at the latest, which says it then."""
    hooks = session.runtime.hooks
    try:
        async with asyncio.timeout(session.config.data_processing_timeout):
            prepared = await batches.prepare(session, txn, body, clean, no_dot_lines)
            messages = _make_messages(session, txn, prepared)
            if session.config.deferred_queue:
                _defer(messages)
            else:
                for index, message in enumerate(messages):
                    if index:
                        # One event may cost milliseconds (a policy editing a large
                        # header block); 1,024 of them in a row held the loop for
                        # seconds (tests/smtp/test_adversary_header_edits.py).
                        await asyncio.sleep(0)
                    await hooks.smtp_server_message_received(message, session.conn_meta)
                    message.forget_own_parse()  # else each edited copy keeps one
    except TimeoutError:
        await session.reply(451, "4.4.5 data_processing_timeout exceeded (rx)")
        return
    trace = session.config.trace_headers
    relay: list[Message] = []
    reports: list[tuple[Message, Report]] = []
    black_holed = False
    for message in messages:
        if trace.supplemental_header:
            add_supplemental_header(message, trace.header_name, trace.include_meta_names)
        keep, report = await _disposition(session, message)
        if report is not None:
            reports.append((message, report))
        if message.queue_name() == NULL_QUEUE:
            black_holed = True  # accepted and discarded, as the policy asked
            relay.append(message)  # intake logs its Reception, then discards it
        elif keep:
            relay.append(message)
    if not (relay or reports or black_holed):
        await session.reply(550, "5.7.1 relaying not permitted")
        return
    # A relayed ARF report is logged as Feedback *instead of* Reception, as in KumoMTA.
    feedback_ids = frozenset(m.id for m, report in reports if report.feedback is not None)
    expected.arrived()  # handed to the spools now: the commit need not wait any longer
    results = await _accept(session, relay, feedback_ids)
    accepted = await _final_reply(session, [m.id for m in messages], results)
    # Reports are logged once the client was told they were taken: a refused transaction
    # is retried, and must not log its OOB/Feedback records again each time.
    for message, report in reports:
        if message.id in accepted:
            await log_report(session.runtime.journal, message, report,
                             peer_ip=session.peer_ip, ehlo=session.ehlo_domain or "")


def _defer(messages: list[Message]) -> None:
    """``deferred_queue = true``: no ``smtp_server_message_received``; each message goes
    to the deferred injection queue, whose handler runs after the reply
    (:mod:`kumocore.queue.deferred_inject`)."""
    for message in messages:
        message.set_meta("queue", DEFERRED_QUEUE_NAME)


def _make_messages(
    session: EsmtpSession, txn: Transaction, prepared: batches.Prepared
) -> list[Message]:
    trace = session.config.trace_headers
    date = rfc2822_now()
    protocol = protocol_name(tls=session.tls_active, authenticated=session.authn_id is not None)
    # Each message holds only its own header lines (Received...), the body apart: several
    # messages share it, and one message's trace headers are prepended without a copy
    # of the body each time (a sole body is still spooled as the message's own record).
    shared = SharedBody(prepared.body, crlf_clean=prepared.clean,
                        no_dot_lines=prepared.no_dot_lines, sole=len(prepared.batches) == 1)
    meta = prepared.meta
    messages = []
    for batch in prepared.batches:  # one address (nearly always), or a tuple of them
        message_id = new_message_id()
        head = b""
        if trace.received_header:
            head = received_header(
                ehlo_domain=session.ehlo_domain, peer_ip=session.peer_ip,
                hostname=session.config.hostname, local_ip=session.local_ip,
                protocol=protocol, message_id=message_id,
                recipient=batches.first_recipient(batch).email,
                date=date)
        # The Received header holds what the client sent (EHLO name): checked, not assumed.
        head_clean = lines.check_line_endings(head)
        messages.append(Message(txn.sender, batch, head, shared=shared, id=message_id,
                                meta=meta, crlf_clean=head_clean))
    return messages


async def _disposition(session: EsmtpSession, message: Message) -> tuple[bool, Report | None]:
    """Whether to queue ``message``, and the OOB/ARF report it carries, if any."""
    disposition = await check_relaying(
        session.domains, peer_ip=session.peer_ip, sender=message.sender,
        recipient=message.recipient)
    report = await find_report(message, disposition)
    keep = report.relay if report is not None else disposition.relay
    if SERVER_TRACE.active:
        trace_disposition(session.conn_meta, message, disposition, keep=keep,
                          report=report is not None)
    return keep, report


async def _accept(session: EsmtpSession, messages: list[Message],
                  feedback_ids: frozenset[str] = frozenset()) -> list[Accepted]:
    if not messages:
        return []
    services = session.runtime.services
    intake = services.intake if services is not None else None
    if intake is None:
        raise RuntimeError("the ESMTP listener runs without an intake")
    return await intake.accept(messages, reception_protocol="ESMTP",
                               without_reception_record=feedback_ids, all_or_nothing=True,
                               deferred_spool=session.config.deferred_spool)


async def _final_reply(
    session: EsmtpSession, ids: list[str], results: list[Accepted]
) -> set[str]:
    """Answer the transaction; return the ids the client was told were accepted."""
    failed = [result for result in results if not result.ok]
    if not failed:
        await session.reply(250, f"OK ids={' '.join(ids)}")
        return set(ids)
    for result in failed:
        log.error("message not accepted", id=result.message.id, error=str(result.error))
    policy = [r.error for r in failed if isinstance(r.error, Rejection | PolicyError | HookError)]
    rejection = next((e for e in policy if isinstance(e, Rejection)), None)
    if rejection is not None:
        await session.reject(rejection)
        return set()
    # A spool failure for some recipients: KumoMTA answers "250 PARTIAL", but a 250 to
    # DATA acknowledges every accepted recipient, so the failed ones would be lost. A
    # transient refusal makes the client retry them all: duplicates over loss.
    await session.technical_difficulties()
    return set()
