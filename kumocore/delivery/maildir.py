"""``protocol = { maildir_path = ..., dir_mode = ..., file_mode = ... }``: local delivery.

A message is written the way the maildir format (Courier/qmail, D. J. Bernstein's
``maildir(5)``) asks: into ``tmp/`` under a unique name, flushed to disk, then linked
into ``new/`` and removed from ``tmp/``, so a reader never sees a partial file. The
directory and its ``tmp``, ``new``, ``cur`` sub-directories are created when missing,
with ``dir_mode`` when given; the file gets ``file_mode`` when given. Modes are applied
with ``chmod``, so a restrictive process umask does not narrow them (they exist to share
the maildir with e.g. dovecot).

As in KumoMTA, the Delivery record says ``200 <recipient>: wrote to maildir with
id=<name>`` with ``delivery_protocol`` ``Maildir``; a write that fails is a
TransientFailure (code 400) retried about a minute later, not on the queue's schedule.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from typing import TYPE_CHECKING

from kumocore.delivery.tls import SessionInfo
from kumocore.response import Response

if TYPE_CHECKING:
    from kumocore.delivery.protocols import MaildirProtocol
    from kumocore.message import Message
    from kumocore.queue.manager import QueueManager

#: KumoMTA retries a failed maildir write after about a minute, whatever the schedule.
RETRY_SECONDS = 60.0

_counter = itertools.count(1)
MAILDIR = SessionInfo(delivery_protocol="Maildir")


def _hostname() -> str:
    # maildir(5): "/" and ":" in the host name are written as octal escapes.
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def unique_name() -> str:
    """``<seconds>.M<microseconds>P<pid>Q<n>.<host>``: unique per host, process and call."""
    now = time.time()
    seconds, micros = int(now), int((now % 1) * 1_000_000)
    return f"{seconds}.M{micros}P{os.getpid()}Q{next(_counter)}.{_hostname()}"


def _make_dirs(root: str, dir_mode: int | None) -> None:
    for sub in ("", "tmp", "new", "cur"):
        path = os.path.join(root, sub) if sub else root
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            if dir_mode is not None:
                os.chmod(path, dir_mode)


def store_new(root: str, data: bytes, dir_mode: int | None, file_mode: int | None) -> str:
    """Write ``data`` as a new message of the maildir ``root``; its unique name."""
    _make_dirs(root, dir_mode)
    name = unique_name()
    tmp = os.path.join(root, "tmp", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if file_mode is not None:
            os.fchmod(fd, file_mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, os.path.join(root, "new", name))
    finally:
        os.unlink(tmp)
    # The new directory entry must survive a crash too, as the spool record is deleted next.
    dir_fd = os.open(os.path.join(root, "new"), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return name


async def deliver_to_maildir(
    manager: QueueManager, message: Message, protocol: MaildirProtocol
) -> None:
    """Write ``message`` into the maildir; its outcome goes to the queue's outcomes."""
    recipient = str(message.recipient)
    try:
        data = message.data or await manager.load_data(message)
        if data is None:
            raise OSError("message body missing from the spool")
        name = await asyncio.to_thread(
            store_new, protocol.path, data, protocol.dir_mode, protocol.file_mode)
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
