"""``POST /api/xfer/inject/v1``: take a message another node transfers to this one.

As KumoMTA's receiving side: decode the payload (:mod:`.wire`; one message per request,
so the listener's ``request_body_limit`` bounds a request), refuse a message that left
this very node (a transfer loop), note where it came from (``xfer_from``, ``xfer_via``,
``xfer_auth`` meta), restore its queue placement and retry state (:mod:`.queue_info`),
run ``xfer_message_received``, then spool and queue it and log ``XferIn`` in place of a
``Reception``. The answer ``{"id": "<new id>"}`` comes only once the message is durable:
the sender removes its copy on that answer and keeps (and retries) it on any other.
A repeat of a message this process still holds (same ``xfer_prior_id``) is answered
with that copy's id instead of being stored twice (:mod:`.repeats`).

Access is that of the other trusted-host endpoints (``POST api/xfer`` in the default ACL).
Answers: 400 for a malformed payload or a loop, 422 when the policy (the event or
``get_queue_config``) refuses the message, 503 when this node cannot store now (load
shedding, spool or log trouble, still starting) — each ``{"error": "..."}``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from kumocore.errors import HookError, PolicyError, Rejection
from kumocore.http.auth import AuthInfo, request_auth
from kumocore.logs.record import PeerAddress, RecordType
from kumocore.logs.record_builder import Subject, build_record
from kumocore.mail.address import AddressError
from kumocore.mail.ids import created_from_id
from kumocore.mail.message import Message
from kumocore.mail.response import Response
from kumocore.node import shedding
from kumocore.xfer.queue_info import QueueInfoError, restore_info
from kumocore.xfer.repeats import IN_PROGRESS, Repeats
from kumocore.xfer.wire import XFER_INJECT_PATH, XferPayload, XferPayloadError, decode_payload

if TYPE_CHECKING:
    from kumocore.logs.journal import Journal
    from kumocore.node.runtime import Runtime
    from kumocore.policy.hooks import Hooks

__all__ = ["XFER_INJECT_PATH", "XferRefused", "add_xfer_inject_route", "message_from_payload"]

log = structlog.get_logger("kumocore.xfer")

#: 100 ns intervals from the UUID epoch (1582-10-15) to the unix epoch (RFC 9562 5.1).
_UUID1_EPOCH = 0x01B21DD213814000
#: Policy refusals: the message is answered 422 and stays with the sender.
_POLICY_ERRORS = (Rejection, PolicyError, HookError, ValueError, TypeError)


class XferRefused(Exception):
    """The request is answered ``status`` with ``{"error": text}``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def message_from_payload(payload: XferPayload) -> Message:
    """The message to store here: a new id, the source's creation time when its id says
    it (KumoMTA keeps the source id's timestamp too)."""
    if not payload.recipients:
        raise XferRefused(400, "invalid xfer payload: field 'recipient' is empty")
    created = source_created(payload.id)
    try:
        return Message(payload.sender, list(payload.recipients), payload.data,
                       meta=payload.meta, created=created)  # fmt: skip
    except (AddressError, TypeError, ValueError) as exc:
        raise XferRefused(400, f"invalid xfer payload: {exc}") from None


def source_created(source_id: str) -> float | None:
    """The creation time a source id encodes: kumocore's (UUIDv7-shaped) and KumoMTA's
    (UUIDv1 hex) ids both carry one; None for anything else (the message is then "new")."""
    try:
        return created_from_id(source_id)
    except ValueError:
        pass
    try:
        parsed = uuid.UUID(hex=source_id)
    except ValueError:
        return None
    if parsed.version != 1:
        return None
    return (parsed.time - _UUID1_EPOCH) / 10_000_000


class XferInjectHandler:
    """The endpoint, bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.repeats = Repeats()

    @property
    def hooks(self) -> Hooks:
        services = self.runtime.services
        assert services is not None
        return services.hooks

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return web.json_response({"id": await self._receive(request)})
        except XferRefused as exc:
            return web.json_response({"error": exc.text}, status=exc.status)

    async def _receive(self, request: web.Request) -> str:
        services = self.runtime.services
        if services is None:
            raise XferRefused(503, "waiting for spool startup")
        if (reason := shedding.refusal()) is not None:  # memory or spool (kumocore.node.shedding)
            raise XferRefused(503, reason)
        try:
            message = message_from_payload(decode_payload(await request.read()))
        except XferPayloadError as exc:
            raise XferRefused(400, str(exc)) from None
        prior = message.meta.get("xfer_prior_node")
        if prior == services.nodeid:
            raise XferRefused(400, f"cannot xfer to myself. xfer_prior_node={prior} which is "
                              "my node id")  # fmt: skip
        auth = request_auth(request)
        message.set_meta("xfer_from", auth.peer_address)
        message.set_meta("xfer_via", _local_address(request))
        message.set_meta("xfer_auth", auth.summary)
        prior_id = message.meta.get("xfer_prior_id")
        if not isinstance(prior_id, str) or not prior_id:
            return await self._accept(message, auth)
        manager = services.queues
        known = self.repeats.begin(prior_id, lambda i: i in manager.messages)
        if known == IN_PROGRESS:
            raise XferRefused(503, f"xfer_prior_id {prior_id} is being received already")
        if known is not None:
            log.info("repeated transfer answered with the stored copy", id=known)
            return known
        try:
            stored = await self._accept(message, auth)
        except BaseException:
            self.repeats.done(prior_id, None)
            raise
        self.repeats.done(prior_id, stored)
        return stored

    async def _accept(self, message: Message, auth: AuthInfo) -> str:
        """Restore, run the policy, store: the id it is stored under."""
        try:
            restore_info(message)
        except QueueInfoError as exc:
            raise XferRefused(400, f"invalid xfer payload: {exc}") from None
        try:
            await self.hooks.xfer_message_received(message, auth.to_dict())
        except _POLICY_ERRORS as exc:
            raise XferRefused(422, f"xfer_message_received: {exc}") from None
        await self._store(message, auth.peer_address)
        return message.id

    async def _store(self, message: Message, peer: str) -> None:
        """Spool, queue and log the message; raises :class:`XferRefused` if not stored."""
        services = self.runtime.services
        assert services is not None
        result = (await services.intake.accept(
            [message], reception_protocol="Xfer",
            without_reception_record=frozenset({message.id})))[0]  # fmt: skip
        if result.discarded:
            # The null queue: taken and dropped, as at reception (the sender may forget it).
            log.info("transferred message discarded into the null queue", id=message.id)
            return
        error = result.error
        if error is not None:
            raise XferRefused(_status_of(error), f"not stored: {error}")
        log_xfer_in(services.journal, message, peer)


def _status_of(error: BaseException) -> int:
    """422 for the policy's refusal (``get_queue_config`` failed), 503 for "try later"
    (spool or disk trouble, log sinks behind: a 4xx ``Rejection`` from the intake)."""
    if isinstance(error, Rejection):
        return 422 if error.code >= 500 else 503
    return 422 if isinstance(error, _POLICY_ERRORS) else 503


def log_xfer_in(journal: Journal, message: Message, peer: str) -> None:
    """The ``XferIn`` record: as a ``Reception``, with delivery protocol ``xfer``."""
    if journal.logs is None:
        return
    journal.logs.submit(
        build_record(
            RecordType.XferIn,
            Subject.of(message, journal.header_names),
            nodeid=journal.nodeid,
            queue=message.queue_name(),
            response=Response(250, ""),
            peer_address=PeerAddress("", peer),
            delivery_protocol="xfer",
        ),
        message,
    )


def _local_address(request: web.Request) -> str:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return ""
    host, port = str(sockname[0]), int(sockname[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def add_xfer_inject_route(app: web.Application, runtime: Runtime) -> None:
    app.router.add_post(XFER_INJECT_PATH, XferInjectHandler(runtime).handle)
