"""Maildir delivery from the queue: write the message, hand its outcome to the outcomes.

The file writing lives in :mod:`kumocore.delivery.maildir`; this is the queue side, as
KumoMTA delivers maildir queues straight from the scheduled queue (site ``""``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from kumocore.delivery.maildir import MAILDIR, RETRY_SECONDS, UnsafePath, render_path, store_new
from kumocore.mail.response import Response

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
