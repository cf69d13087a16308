"""The sending side of a transfer: how a transfer queue delivers its messages.

A message in ``<target>.xfer.kumomta.internal`` is delivered, as KumoMTA's
``XferDispatcher`` does it, by POSTing it (gzipped, :mod:`.wire`) to the target's
``/api/xfer/inject/v1`` with ``xfer_prior_id`` and ``xfer_prior_node`` added to its meta.
Only a ``200`` answering ``{"id": ...}`` removes it here, logged ``XferOut`` with
``250 new id is <id>``, and only once that record is written (as for a ``Delivery``):
anything else — no connection, a timeout, an error status, an answer without an id — is
a ``TransientFailure`` and the message is tried again on the transfer queue's schedule
(``retry_interval`` 10 s, doubling). A message is thus never lost; if this node stops
between the target's answer and the removal, the target holds a copy and this node sends
it again after the restart (at least once, as in KumoMTA).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import aiohttp
import orjson

from kumocore.config import QueueConfig
from kumocore.config.protocols import DeliveryProtocol
from kumocore.delivery.tls import SessionInfo
from kumocore.mail.response import Response
from kumocore.xfer.wire import XFER_INJECT_PATH, XferPayload, encode_payload, target_of_queue

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.outcomes import Outcomes

__all__ = ["POST_TIMEOUT", "XferProtocol", "XferSender", "deliver_by_xfer", "xfer_queue_config"]

#: Seconds a POST may take, connecting and answering included.
POST_TIMEOUT = 60.0
#: Seconds to connect to the target.
CONNECT_TIMEOUT = 10.0
#: What a transfer queue's records name as their protocol.
XFER_SESSION = SessionInfo(delivery_protocol="xfer")
#: POSTs of one transfer queue in flight at once.
MAX_POSTS = 8
#: The most of a target's answer that is read (it is ``{"id": "..."}``).
MAX_ANSWER = 64 * 1024


class XferSender:
    """The POSTs of one transfer queue, run apart from routing: a target that is slow or
    never answers holds at most :data:`MAX_POSTS` connections of its own queue for up to
    :data:`POST_TIMEOUT` each, never the node's routing tasks (which route all its mail).
    A message waiting for a slot is only a task holding the message routing handed over."""

    def __init__(self) -> None:
        self._slots = asyncio.Semaphore(MAX_POSTS)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, manager: XferOwner, message: Message, protocol: XferProtocol) -> None:
        task = asyncio.get_running_loop().create_task(self._send(manager, message, protocol))
        self._tasks.add(task)  # kept until done: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        """Messages handed over and not yet answered for."""
        return len(self._tasks)

    async def _send(self, manager: XferOwner, message: Message, protocol: XferProtocol) -> None:
        async with self._slots:
            await deliver_by_xfer(manager, message, protocol)


@dataclass(frozen=True)
class XferProtocol(DeliveryProtocol):
    """``{ xfer = { target = 'http://host:port' } }``: deliver to another node."""

    target: str = ""
    #: Its POSTs (one sender per transfer queue's configuration; not part of equality).
    sender: XferSender = dataclasses.field(default_factory=XferSender, compare=False,
                                           repr=False)  # fmt: skip


def xfer_queue_config(queue_name: str) -> QueueConfig | None:
    """The configuration of a transfer queue (None for any other queue): KumoMTA's
    defaults with a 10 s retry interval; the policy is not asked."""
    target = target_of_queue(queue_name)
    if target is None:
        return None
    protocol = XferProtocol("xfer", "xfer", "xfer", {"xfer": {"target": target}}, target)
    config = QueueConfig.from_options({"retry_interval": "10s"})
    return dataclasses.replace(config, protocol=protocol)


class XferOwner(Protocol):
    """What delivery needs of the queue manager."""

    @property
    def outcomes(self) -> Outcomes: ...

    async def load_data(self, message: Message) -> bytes | None: ...


async def deliver_by_xfer(manager: XferOwner, message: Message, protocol: XferProtocol) -> None:
    """POST ``message`` to the target; its outcome goes to the queue's outcomes."""
    url = protocol.target.rstrip("/") + XFER_INJECT_PATH
    try:
        body = await _payload(manager, message, manager.outcomes.journal.nodeid)
        new_id = await _post(url, body)
    except Exception as exc:  # every failure is transient: the message stays here
        text = str(exc) or type(exc).__name__
        response = Response(400, f"xfer POST {url}: {text}"[:2000])
        manager.outcomes.transient(None, message, response, None, None, session=XFER_SESSION)
        return
    manager.outcomes.delivered(None, message, Response(250, f"new id is {new_id}"), None, None,
                               session=XFER_SESSION, kind="XferOut")  # fmt: skip


async def _payload(manager: XferOwner, message: Message, nodeid: str) -> bytes:
    data = message.data or await manager.load_data(message)
    if data is None:
        raise OSError("message body missing from the spool")
    meta = {**message.meta, "xfer_prior_id": message.id, "xfer_prior_node": nodeid}
    recipients = tuple(map(str, message.recipients))
    sent = XferPayload(message.id, str(message.sender), recipients, meta, data)
    return await asyncio.to_thread(gzip.compress, encode_payload(sent))


async def _post(url: str, body: bytes) -> str:
    """The target's new id for the message; raises on anything but a 200 with an id."""
    headers = {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}
    # A target that does not answer fails to connect in CONNECT_TIMEOUT; one that connects
    # and stalls holds one of its queue's MAX_POSTS slots for up to POST_TIMEOUT.
    timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=body, headers=headers) as answer,
    ):
        text = await _read_bounded(answer)
        if answer.status != 200:
            detail = text[:500].decode("utf-8", "replace")
            raise OSError(f"{answer.status} {answer.reason}: {detail}")
    try:
        new_id = orjson.loads(text)["id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise OSError(f'answer is not {{"id": ...}}: {text[:200]!r}') from None
    if not isinstance(new_id, str):
        raise OSError(f"answer's id is not a string: {new_id!r}")
    return new_id


async def _read_bounded(answer: aiohttp.ClientResponse) -> bytes:
    """The answer's body, refused past :data:`MAX_ANSWER` bytes (a hostile or broken
    target does not get to fill this node's memory)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER:
            raise OSError(f"{answer.status} answer larger than {MAX_ANSWER} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
