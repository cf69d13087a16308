"""``protocol = { maildir_path = ..., dir_mode = ..., file_mode = ... }``: local delivery.

A message is written the way the maildir format (Courier/qmail, D. J. Bernstein's
``maildir(5)``) asks: into ``tmp/`` under a unique name, flushed to disk, then linked
into ``new/`` and removed from ``tmp/``, so a reader never sees a partial file. The
directory and its ``tmp``, ``new``, ``cur`` sub-directories are created when missing,
with ``dir_mode`` when given; the file gets ``file_mode`` when given. Modes are applied
with ``chmod``, so a restrictive process umask does not narrow them (they exist to share
the maildir with e.g. dovecot).

``maildir_path`` may be a template (MiniJinja, as KumoMTA's) with KumoMTA's variables:
``meta``, ``queue``, ``campaign``, ``tenant``, ``domain``, ``routing_domain``,
``local_part``, ``domain_part``, ``email``, ``sender_local_part``, ``sender_domain_part``,
``sender_email``. The values come from senders, so a rendered path with a ``..``
component, or one that leaves the template's literal leading directory
(``/maildirs/{{ local_part }}`` with a local part ``x/../../etc``), is refused: the
message bounces (``550 5.1.3``) rather than being written elsewhere.

As in KumoMTA, the Delivery record says ``200 <recipient>: wrote to maildir with
id=<name>`` with ``delivery_protocol`` ``Maildir``; a write that fails is a
TransientFailure (code 400) retried about a minute later, not on the queue's schedule.
A message with several recipients is written once per recipient, each into the maildir
its path renders to (as KumoMTA); the recipients written share one Delivery record (the
texts joined with ``, ``), those whose write failed one TransientFailure and stay on
the message for the retry (:mod:`kumocore.queue.maildir`).
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from typing import TYPE_CHECKING

from kumocore.delivery.maildir_template import environment as _environment
from kumocore.delivery.tls import SessionInfo
from kumocore.mail.queue_name import parse_queue_name

if TYPE_CHECKING:
    from kumocore.mail.address import EnvelopeAddress
    from kumocore.mail.message import Message

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




class UnsafePath(ValueError):
    """A rendered maildir path that would leave its directory."""


def render_path(
    template: str, message: Message, queue_name: str, recipient: EnvelopeAddress | None = None
) -> str:
    """The maildir of ``message`` for ``recipient`` (default its first): ``template``
    rendered with KumoMTA's variables."""
    if "{{" not in template and "{%" not in template:
        return template
    parts = parse_queue_name(queue_name)
    sender = message.sender
    if recipient is None:
        recipient = message.recipient
    context = {
        "meta": dict(message.meta), "queue": queue_name, "campaign": parts.campaign,
        "tenant": parts.tenant, "domain": parts.domain, "routing_domain": parts.routing_domain,
        "local_part": recipient.user, "domain_part": recipient.domain,
        "email": str(recipient), "sender_local_part": sender.user,
        "sender_domain_part": sender.domain, "sender_email": str(sender),
    }
    env = _environment()
    env.add_template("maildir_path", template)
    rendered = str(env.render_template("maildir_path", **context))
    prefix = os.path.dirname(template.split("{", 1)[0])
    if ".." in rendered.split("/") or "\0" in rendered or not rendered or (
            prefix and not rendered.startswith(prefix.rstrip("/") + "/")):
        raise UnsafePath(f"maildir path {rendered[:200]!r} rendered from the message leaves "
                         f"{prefix or 'its directory'!r}")
    return rendered
