"""Deferred generation: ``"deferred_generation": true`` queues the request, not messages.

KumoMTA's answer to a request too large to expand while the client waits. The request is
checked as any other (JSON, fields, sizes, templates: a bad one is still refused at
once), then spooled as one message into ``generator.kumomta.internal``: its sender the
request's envelope sender, a null recipient, the request's JSON as its body, and the meta
KumoMTA gives it (``auth_info``, ``http_auth``, ``reception_protocol``, ``received_from``,
``queue``). It gets a ``Reception`` record, and the client gets zero counts: how each
recipient fares is in the log records of the messages generated later.

:class:`DeferredGenerator` is what that queue runs for each request
(:mod:`kumocore.queue.generator_inject`): the immediate injection, with the peer and
authorisation the request came with and a default HTTP listener's limits (the listener
that took the request may be gone, e.g. after a restart). A large request is decoded and
checked in a worker thread, as the listener does (80,000 recipients held the loop for
0.5 s), and it resumes after the recipients its meta counts as generated
(:data:`~kumocore.queue.generator_inject.GENERATED_META`).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from kumocore.errors import Rejection
from kumocore.http.auth import AuthInfo
from kumocore.http.inject import ChunkRefused, InjectHandler, InjectRefused
from kumocore.mail.address import parse_envelope_address
from kumocore.mail.message import Message
from kumocore.queue.generator_inject import (
    GENERATED_META,
    GENERATOR_QUEUE_NAME,
    GenerationPaused,
)

if TYPE_CHECKING:
    from kumocore.http.inject_schema import InjectRequest
    from kumocore.http.templating import Templates
    from kumocore.policy.policy_host import PolicyHost

__all__ = ["DeferredGenerator", "QueueingInjectHandler", "queue_request"]

log = structlog.get_logger("kumocore.http.inject_deferred")

#: The answer to a queued request (KumoMTA's: nothing is generated yet).
_QUEUED: dict[str, Any] = {
    "success_count": 0, "fail_count": 0, "failed_recipients": [], "errors": []}
_NULL = parse_envelope_address("<>", allow_null=True)


def request_message(body: bytes, inject: InjectRequest, auth: AuthInfo) -> Message:
    """The message that carries a queued request."""
    meta = {"auth_info": auth.to_dict(), "http_auth": auth.summary,
            "reception_protocol": "HTTP", "received_from": auth.peer_address,
            "queue": GENERATOR_QUEUE_NAME}  # fmt: skip
    return Message(inject.envelope_sender, _NULL, body, meta=meta)


async def queue_request(
    runtime: PolicyHost, body: bytes, inject: InjectRequest, auth: AuthInfo
) -> dict[str, Any]:
    """Spool and queue the request ``body`` (already checked as ``inject``); the API's
    answer. Raises :class:`InjectRefused` when it could not be stored."""
    services = runtime.services
    if services is None:
        raise InjectRefused(503, "waiting for spool startup")
    [result] = await services.intake.accept(
        [request_message(body, inject, auth)], reception_protocol="HTTP",
        deferred_spool=inject.deferred_spool)
    if result.error is not None:
        status = 503 if isinstance(result.error, Rejection) and result.error.code < 500 else 500
        raise InjectRefused(status, f"the request could not be queued: {result.error}")
    return dict(_QUEUED, failed_recipients=[], errors=[])


class QueueingInjectHandler(InjectHandler):
    """The injection handler of a node: ``deferred_generation`` requests are queued."""

    queues_requests = True

    async def answer(
        self, raw: bytes, inject: InjectRequest, templates: Templates, auth: AuthInfo,
        via: str | None,
    ) -> dict[str, Any]:
        if inject.deferred_generation:
            return await queue_request(self.runtime, raw, inject, auth)
        return await super().answer(raw, inject, templates, auth, via)


def _auth_of(meta: dict[str, Any]) -> AuthInfo:
    info = meta.get("auth_info")
    peer = str(meta.get("received_from", ""))
    if not isinstance(info, dict):
        return AuthInfo(peer_address=peer, trusted=False)
    user = info.get("user")
    return AuthInfo(peer_address=str(info.get("peer_address", peer)),
                    trusted=bool(info.get("trusted")),
                    user=user if isinstance(user, str) else None)


class DeferredGenerator:
    """Runs queued requests for one node (its :meth:`generate` is the queue's work)."""

    def __init__(self, runtime: PolicyHost) -> None:
        self.runtime = runtime
        self._handler: InjectHandler | None = None

    def _injection(self) -> InjectHandler:
        if self._handler is None:  # made on first use: the hostname is known by then
            from kumocore.config import HttpListenerConfig

            config = HttpListenerConfig.from_options({"hostname": self.runtime.hostname})
            self._handler = InjectHandler(self.runtime, config)
            # Nobody waits for the answer: a chunk refused for now is tried again later.
            self._handler.pauses_on_refusal = True
        return self._handler

    async def generate(self, message: Message) -> None:
        """Expand the request ``message`` carries, from its first recipient not generated
        yet; raises ValueError when it cannot be run at all, GenerationPaused when its
        progress could not be saved or the node refuses messages for now."""
        if not message.recipient.is_null or len(message.recipients) > 1:
            # Mail that only names the queue (an SMTP client sending to
            # x@generator.kumomta.internal with no Received header before a JSON body)
            # would run as a request past the HTTP listener's access checks and limits.
            raise ValueError("not a queued injection request: its recipient is not <>")
        handler = self._injection()
        inject, templates = await _checked(handler, message.data)
        stop = asyncio.Event()
        run = asyncio.ensure_future(handler.inject(
            inject, templates, _auth_of(message.meta), None, start=_generated(message),
            progress=functools.partial(self._count, message, stop)))
        try:
            await asyncio.shield(run)
        except ChunkRefused as exc:
            raise GenerationPaused(f"the node refused its messages for now: {exc}") from exc
        except asyncio.CancelledError:
            # Stopped (a shutdown, an aborted connection): the chunk under way is spooled
            # and counted first, so that the next run neither repeats nor skips anyone.
            stop.set()
            await asyncio.wait([run])
            if not run.cancelled() and not isinstance(run.exception(), _Stopped | None):
                log.error("deferred injection request failed while stopping",
                          id=message.id, error=str(run.exception()))  # fmt: skip
            raise

    async def _count(self, message: Message, stop: asyncio.Event, done: int) -> None:
        """After each chunk: the request's count of recipients generated, saved."""
        message.set_meta(GENERATED_META, done)
        services = self.runtime.services
        try:
            if services is not None:
                await services.store.save_meta_if_written(message)
        except Exception as exc:
            raise GenerationPaused(f"progress not saved after {done} recipients: {exc}") \
                from exc
        if stop.is_set():
            raise _Stopped


class _Stopped(Exception):
    """Ends a queued request's run at a chunk's end (see DeferredGenerator.generate)."""


async def _checked(handler: InjectHandler, data: bytes) -> tuple[InjectRequest, Templates]:
    """Decode and check a queued request (its recipients a slice at a time); ValueError
    when it cannot be run."""
    body = orjson.loads(data)  # (its JSONDecodeError is a ValueError)
    if not isinstance(body, dict):
        raise ValueError("the queued request is not a JSON object")
    body["deferred_generation"] = False
    try:
        return await handler.prepare(body)
    except InjectRefused as exc:
        raise ValueError(exc.text) from None


def _generated(message: Message) -> int:
    """How many of the request's recipients a previous run generated (0 at first)."""
    count = message.meta.get(GENERATED_META)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0
