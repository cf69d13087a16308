"""Maildir delivery from the queue: write the message, hand its outcome to the outcomes.

The file writing lives in :mod:`kumocore.delivery.maildir`; this is the queue side, as
KumoMTA delivers maildir queues straight from the scheduled queue (site ``""``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from kumocore.delivery.maildir import MAILDIR, RETRY_SECONDS, UnsafePath, render_path, store_new
from kumocore.mail.response import Response
from kumocore.queue.batch_groups import BOUNCE, DELIVERY, TRANSIENT, Group

if TYPE_CHECKING:
    from kumocore.config.protocols import MaildirProtocol
    from kumocore.mail.message import Message
    from kumocore.queue.outcomes import Outcomes


class MaildirOwner(Protocol):
    """What maildir delivery needs of the queue manager."""

    @property
    def outcomes(self) -> Outcomes: ...

    async def load_data(self, message: Message) -> bytes | None: ...


async def deliver_to_maildir(
    manager: MaildirOwner, message: Message, protocol: MaildirProtocol, queue_name: str
) -> None:
    """Write ``message`` into the maildir; its outcome goes to the queue's outcomes."""
    if len(message.recipients) > 1:
        await _deliver_batch(manager, message, protocol, queue_name)
        return
    recipient = str(message.recipient)
    try:
        root = render_path(protocol.path, message, queue_name)
        data = message.data or await manager.load_data(message)
        if data is None:
            raise OSError("message body missing from the spool")
        name = await asyncio.to_thread(
            store_new, root, data, protocol.dir_mode, protocol.file_mode)
    except UnsafePath as exc:  # never deliverable: bounce rather than retry for days
        manager.outcomes.bounce(None, message, Response.parse(550, f"5.1.3 {exc}"), None, None,
                                session=MAILDIR)
        return
    except Exception as exc:
        response = Response(
            code=400, enhanced_code=None,
            content=f"{recipient}: failed to write to maildir: {exc}", command=None)
        manager.outcomes.transient(None, message, response, None, None, session=MAILDIR,
                                   retry_after=RETRY_SECONDS)
        return
    response = Response(
        code=200, enhanced_code=None,
        content=f"{recipient}: wrote to maildir with id={name}", command=None)
    manager.outcomes.delivered(None, message, response, None, None, session=MAILDIR)


async def _deliver_batch(
    manager: MaildirOwner, message: Message, protocol: MaildirProtocol, queue_name: str
) -> None:
    """One file per recipient, each in the maildir its path renders to (KumoMTA writes
    each recipient's copy); outcomes per recipient (:mod:`kumocore.queue.batch_outcomes`)."""
    try:
        data = message.data or await manager.load_data(message)
        if data is None:
            raise OSError("message body missing from the spool")
    except Exception as exc:  # nothing was written: the whole message waits
        response = Response(code=400, enhanced_code=None,
                            content=f"failed to read the message: {exc}", command=None)
        manager.outcomes.transient(None, message, response, None, None, session=MAILDIR,
                                   retry_after=RETRY_SECONDS)
        return
    written: list[tuple[str, str]] = []  # (recipient, text), as are the failed
    failed: list[tuple[str, str]] = []
    bounced: list[tuple[str, Response]] = []
    for recipient in message.recipients:
        try:
            root = render_path(protocol.path, message, queue_name, recipient)
            name = await asyncio.to_thread(
                store_new, root, data, protocol.dir_mode, protocol.file_mode)
        except UnsafePath as exc:
            bounced.append((str(recipient), Response.parse(550, f"5.1.3 {exc}")))
        except Exception as exc:
            failed.append((str(recipient), f"{recipient}: failed to write to maildir: {exc}"))
        else:
            written.append((str(recipient), f"{recipient}: wrote to maildir with id={name}"))
    if failed:  # they stay on the message for the retry; the others leave it
        message.set_recipient_list([recipient for recipient, _ in failed])
    manager.outcomes.batch(
        None, message, _groups(written, failed, bounced), None, None, session=MAILDIR,
        left=bool(failed), retry_after=RETRY_SECONDS)


def _groups(
    written: list[tuple[str, str]], failed: list[tuple[str, str]],
    bounced: list[tuple[str, Response]],
) -> list[Group]:
    """KumoMTA's records: one Delivery for the recipients written and one
    TransientFailure for those that failed, each with the recipients' texts joined;
    kumocore's bounce of a path that would leave its directory, one per recipient."""
    groups = [Group(BOUNCE, response, (recipient,)) for recipient, response in bounced]
    for kind, code, done in ((DELIVERY, 200, written), (TRANSIENT, 400, failed)):
        if done:
            response = Response(code=code, enhanced_code=None,
                                content=", ".join(text for _, text in done), command=None)
            groups.append(Group(kind, response, tuple(recipient for recipient, _ in done)))
    return groups
