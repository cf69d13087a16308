"""``POST /api/inject/v1``: generate one message per recipient, run the policy, spool.

Flow, per KumoMTA: validate the request (``400`` with ``{"error": ...}`` when malformed,
``413`` over ``request_body_limit``), compile its templates (``422`` on a syntax error or
a builder without a body), then for each recipient render the message, build a
:class:`~kumocore.message.Message` with the HTTP reception meta and run
``http_message_generated``. Everything generated goes to :meth:`Intake.accept` in one
batch, so the spool commits the whole request in one synced write. A recipient whose
template fails to render, whose message the policy rejects (``kumo.reject``), or that the
intake cannot take, is counted in ``fail_count`` with its error text; the request itself
still answers ``200``::

    {"success_count": 2, "fail_count": 1, "failed_recipients": ["c@x"],
     "errors": ["c@x: 550 no thanks"]}
"""

from __future__ import annotations

import email.errors
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import web

from kumocore.errors import HookError, PolicyError, Rejection
from kumocore.http.auth import AuthInfo, request_auth
from kumocore.http.builder import BuildError, build_message, compile_templates
from kumocore.http.inject_schema import InjectRequest, RequestError, parse_inject_request
from kumocore.http.templating import TemplateFailure, Templates
from kumocore.message import Message
from kumocore.smtp.trace import add_supplemental_header, rfc2822_now

if TYPE_CHECKING:
    from kumocore.config import HttpListenerConfig
    from kumocore.http.inject_schema import InjectRecipient
    from kumocore.runtime import Runtime

log = structlog.get_logger("kumocore.http")

TOO_LARGE = "Failed to buffer the request body: length limit exceeded"
#: Per-recipient failures: reported in ``errors``, never an HTTP error.
#: ValueError and MessageError: whatever else the ``email`` package refuses to build is
#: that recipient's failure, never a 500 for the batch.
_RECIPIENT_ERRORS = (Rejection, PolicyError, HookError, TemplateFailure, BuildError, TypeError,
                     ValueError, email.errors.MessageError)


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class InjectHandler:
    """The request handler, bound to one listener's runtime and configuration."""

    def __init__(self, runtime: Runtime, config: HttpListenerConfig) -> None:
        self.runtime = runtime
        self.config = config

    async def handle(self, request: web.Request) -> web.Response:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text=TOO_LARGE)
        try:
            inject = parse_inject_request(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            return json_error(400, f"request body is not valid JSON: {exc}")
        except RequestError as exc:
            return json_error(400, str(exc))
        except RecursionError:
            return json_error(400, "request body nests arrays/objects too deeply")
        if inject.deferred_generation:
            return json_error(422, "deferred_generation is not supported by kumocore")
        try:
            templates = compile_templates(inject, self.config.max_rendered_size)
        except (TemplateFailure, BuildError) as exc:
            return json_error(422, str(exc))
        auth = request_auth(request)
        summary = await self.inject(inject, templates, auth, self._via(request))
        return web.json_response(summary)

    def _via(self, request: web.Request) -> str:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if not sockname:
            return self.config.listen
        host, port = str(sockname[0]), int(sockname[1])
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def inject(
        self, inject: InjectRequest, templates: Templates, auth: AuthInfo, via: str
    ) -> dict[str, Any]:
        generated: list[tuple[str, Message]] = []
        errors: list[tuple[str, str]] = []
        for recipient in inject.recipients:
            try:
                message = self._generate(inject, templates, recipient, auth, via)
                await self.runtime.hooks.http_message_generated(message, auth.to_dict())
                self._trace(inject, message, auth)
            except _RECIPIENT_ERRORS as exc:
                errors.append((recipient.email, str(exc)))
                continue
            generated.append((recipient.email, message))
        if generated:
            intake = self.runtime.intake
            if intake is None:
                raise web.HTTPServiceUnavailable(text="waiting for spool startup")
            results = await intake.accept([m for _, m in generated], reception_protocol="HTTP")
            for (email, _), result in zip(generated, results, strict=True):
                if not result.ok:
                    log.error("injected message not accepted", error=str(result.error))
                    errors.append((email, str(result.error)))
        return {
            "success_count": len(inject.recipients) - len(errors),
            "fail_count": len(errors),
            "failed_recipients": [email for email, _ in errors],
            "errors": [f"{email}: {text}" for email, text in errors],
        }

    def _generate(
        self, inject: InjectRequest, templates: Templates, recipient: InjectRecipient,
        auth: AuthInfo, via: str,
    ) -> Message:
        data = build_message(inject, templates, recipient)
        meta: dict[str, Any] = {
            "http_auth": auth.summary,
            "auth_info": auth.to_dict(),
            "reception_protocol": "HTTP",
            "received_from": auth.peer_address,
            "received_via": via,
            "hostname": self.config.hostname,
        }
        if recipient.metadata is not None:
            meta["extra"] = recipient.metadata
        return Message(inject.envelope_sender, recipient.address, data, meta=meta)

    def _trace(self, inject: InjectRequest, message: Message, auth: AuthInfo) -> None:
        trace = inject.trace_headers
        if trace.received_header:
            message.prepend_header("Received", (
                f"from {auth.peer_address} by {self.config.hostname} with HTTP "
                f"id {message.id} for <{message.recipient.email}>; {rfc2822_now()}"))
        if trace.supplemental_header:
            add_supplemental_header(message, trace.header_name, trace.include_meta_names)
