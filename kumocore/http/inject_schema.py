"""The ``/api/inject/v1`` request: KumoMTA's schema, validated strictly.

Like KumoMTA (serde ``deny_unknown_fields``), an unknown field is an error, as is a value
of the wrong type; the error names the field (``recipients[2].email``). Addresses are
parsed here, and header values are refused when they contain a control character or
anything Python's ``str.splitlines`` (and so the ``email`` package) treats as a line break
(``\v``, ``\f``, ``\x1c``-``\x1e``, ``\x85``, U+2028, U+2029), so that nothing a client
sends can become an extra header line or break building the message. Every problem is a
:class:`RequestError`, answered with ``400`` and ``{"error": "..."}``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kumocore.http.frozen import FrozenDict, freeze
from kumocore.mail.address import AddressError, EnvelopeAddress, parse_envelope_address
from kumocore.node.stepwise import Steps, run_whole

DIALECTS = ("Jinja", "Static", "Handlebars")
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
#: C0 controls but TAB, DEL, NEL and the Unicode line/paragraph separators.
_HEADER_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_TRACE_KEYS = ("received_header", "supplemental_header", "header_name", "include_meta_names")


class RequestError(ValueError):
    """The request body does not follow the schema; the text names the field."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    email: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    data: bytes
    content_type: str
    content_id: str | None = None
    file_name: str | None = None


@dataclass(frozen=True, slots=True)
class Builder:
    """``content`` as an object: the MIME structure to build."""

    text_body: str | None = None
    html_body: str | None = None
    amp_html_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    from_: Mailbox | None = None
    reply_to: Mailbox | None = None
    subject: str | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class InjectRecipient:
    email: str
    address: EnvelopeAddress
    name: str | None = None
    substitutions: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TraceHeaders:
    received_header: bool = False
    supplemental_header: bool = True
    header_name: str = "X-KumoRef"
    include_meta_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InjectRequest:
    envelope_sender: EnvelopeAddress
    recipients: tuple[InjectRecipient, ...]
    content: str | Builder
    substitutions: dict[str, Any] = field(default_factory=dict)
    template_dialect: str = "Jinja"
    deferred_spool: bool = False
    deferred_generation: bool = False
    trace_headers: TraceHeaders = field(default_factory=TraceHeaders)


#: Values checked per step of :func:`parse_steps` (a recipient, and each of its
#: substitutions and metadata entries, counts one): about 1 ms of work.
RECIPIENTS_PER_STEP = 200


def parse_inject_request(body: Any) -> InjectRequest:
    """Validate a decoded JSON body at once; raises :class:`RequestError`."""
    return run_whole(parse_steps(body))


def parse_steps(body: Any) -> Steps[InjectRequest]:
    """Validate a decoded JSON body, yielding after every :data:`RECIPIENTS_PER_STEP`
    recipients (:func:`kumocore.node.stepwise.run_stepwise` runs it on the event loop:
    80,000 recipients are 0.4-0.5 s of checking); raises :class:`RequestError`."""
    obj = _object(body, "request", required=("envelope_sender", "recipients", "content"),
                  optional=("substitutions", "template_dialect", "deferred_spool",
                            "deferred_generation", "trace_headers"))
    recipients = _list(obj["recipients"], "recipients")
    if not recipients:
        raise RequestError("recipients: at least one recipient is required")
    dialect = obj.get("template_dialect", "Jinja")
    if dialect not in DIALECTS:
        raise RequestError(f"template_dialect: expected one of {', '.join(DIALECTS)}")
    envelope_sender = _address(obj["envelope_sender"], "envelope_sender", allow_null=True)
    checked: list[InjectRecipient] = []
    work = 0
    for i, value in enumerate(recipients):
        recipient = _recipient(value, f"recipients[{i}]")
        checked.append(recipient)
        work += 1 + len(recipient.substitutions) + len(recipient.metadata or ())
        if work >= RECIPIENTS_PER_STEP:
            work = 0
            yield
    substitutions = yield from _frozen_steps(_map(obj.get("substitutions", {}),
                                                  "substitutions"))
    return InjectRequest(
        envelope_sender=envelope_sender,
        recipients=tuple(checked),
        content=_content(obj["content"]),
        substitutions=substitutions,
        template_dialect=dialect,
        deferred_spool=_bool(obj.get("deferred_spool", False), "deferred_spool"),
        deferred_generation=_bool(obj.get("deferred_generation", False), "deferred_generation"),
        trace_headers=_trace(obj.get("trace_headers")),
    )


def _frozen_steps(values: dict[str, Any]) -> Steps[dict[str, Any]]:
    """:func:`~kumocore.http.frozen.freeze` of a request's substitutions, a step at a
    time: 150,000 keys are 80 ms of work."""
    frozen: dict[str, Any] = {}
    for n, (key, value) in enumerate(values.items(), 1):
        frozen[str(key)] = freeze(value)
        if n % RECIPIENTS_PER_STEP == 0:
            yield
    return FrozenDict(frozen) if frozen else freeze(frozen)


def _recipient(value: Any, where: str) -> InjectRecipient:
    obj = _object(value, where, required=("email",),
                  optional=("name", "substitutions", "metadata"))
    email = _header_text(obj["email"], f"{where}.email") or ""
    metadata = obj.get("metadata")
    return InjectRecipient(
        email=email,
        address=_address(email, f"{where}.email", allow_null=False),
        name=_header_text(obj.get("name"), f"{where}.name"),
        substitutions=freeze(_map(obj.get("substitutions", {}), f"{where}.substitutions")),
        metadata=None if metadata is None else _map(metadata, f"{where}.metadata"),
    )


def _content(value: Any) -> str | Builder:
    if isinstance(value, str):
        return value
    obj = _object(value, "content", required=(), optional=(
        "text_body", "html_body", "amp_html_body", "headers", "from", "reply_to", "subject",
        "attachments"))
    headers = _map(obj.get("headers", {}), "content.headers")
    for name, header_value in headers.items():
        if _HEADER_NAME.fullmatch(name) is None:
            raise RequestError(f"content.headers: {name!r} is not a valid header name")
        _header_text(header_value, f"content.headers[{name!r}]")
    return Builder(
        text_body=_body_text(obj.get("text_body"), "content.text_body"),
        html_body=_body_text(obj.get("html_body"), "content.html_body"),
        amp_html_body=_body_text(obj.get("amp_html_body"), "content.amp_html_body"),
        headers=headers,
        from_=_mailbox(obj.get("from"), "content.from"),
        reply_to=_mailbox(obj.get("reply_to"), "content.reply_to"),
        subject=_header_text(obj.get("subject"), "content.subject"),
        attachments=tuple(
            _attachment(a, f"content.attachments[{i}]")
            for i, a in enumerate(_list(obj.get("attachments", []), "content.attachments"))),
    )


def has_template_syntax(text: str) -> bool:
    """Whether ``text`` holds an expression or a statement (``{{ }}``, ``{% %}``): what it
    says once rendered, and how long rendering takes, depend on more than the text."""
    return "{{" in text or "{%" in text


def _body_text(value: Any, where: str) -> str | None:
    """A body template: any text but NUL, which no message may carry (RFC 5322 2.3)."""
    text = _optional_str(value, where)
    if text is not None and "\0" in text:
        raise RequestError(f"{where}: must not contain a NUL character")
    return text


def _mailbox(value: Any, where: str) -> Mailbox | None:
    if value is None:
        return None
    obj = _object(value, where, required=("email",), optional=("name",))
    email = _header_text(obj["email"], f"{where}.email") or ""
    if not has_template_syntax(email):  # a template is checked once rendered
        _address(email, f"{where}.email", allow_null=False)  # 'f @example.com' is none
    return Mailbox(email, _header_text(obj.get("name"), f"{where}.name"))


def _attachment(value: Any, where: str) -> Attachment:
    obj = _object(value, where, required=("data", "content_type"),
                  optional=("content_id", "file_name", "base64"))
    text = _str(obj["data"], f"{where}.data")
    if _bool(obj.get("base64", False), f"{where}.base64"):
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"{where}.data: invalid base64") from None
    else:
        data = text.encode("utf-8")
    content_type = _header_text(obj["content_type"], f"{where}.content_type") or ""
    if content_type.count("/") != 1:
        raise RequestError(f"{where}.content_type: expected type/subtype, got {content_type!r}")
    content_id = _header_text(obj.get("content_id"), f"{where}.content_id")
    if content_id and any(c in content_id for c in '<>" \t\\'):
        # It is written as <content_id>: these would end or break that msg-id (RFC 2392).
        raise RequestError(f"{where}.content_id: expected a Content-ID without <, >, quotes, "
                           f"backslashes or spaces, got {content_id!r}")
    return Attachment(data, content_type, content_id,
                      _header_text(obj.get("file_name"), f"{where}.file_name"))


def _trace(value: Any) -> TraceHeaders:
    if value is None:
        return TraceHeaders()
    obj = _object(value, "trace_headers", required=(), optional=_TRACE_KEYS)
    defaults = TraceHeaders()
    names = _list(obj.get("include_meta_names", []), "trace_headers.include_meta_names")
    return TraceHeaders(
        received_header=_bool(obj.get("received_header", defaults.received_header),
                              "trace_headers.received_header"),
        supplemental_header=_bool(obj.get("supplemental_header", defaults.supplemental_header),
                                  "trace_headers.supplemental_header"),
        header_name=_header_name(obj.get("header_name"), "trace_headers.header_name")
        or defaults.header_name,
        include_meta_names=tuple(_str(n, "trace_headers.include_meta_names") for n in names),
    )


# ---------------------------------------------------------------- primitives


def _object(value: Any, where: str, *, required: tuple[str, ...],
            optional: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RequestError(f"{where}: expected an object")
    for key in value:
        if key not in required and key not in optional:
            raise RequestError(f"{where}: unknown field {key!r}; expected one of "
                               f"{', '.join(sorted({*required, *optional}))}")
    for key in required:
        if value.get(key) is None:
            raise RequestError(f"{where}: missing field {key!r}")
    return {k: v for k, v in value.items() if v is not None}


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise RequestError(f"{where}: expected an array")
    return value


def _map(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RequestError(f"{where}: expected an object")
    return dict(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{where}: expected a string")
    return value


def _optional_str(value: Any, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"{where}: expected true or false")
    return value


def _header_text(value: Any, where: str) -> str | None:
    """A string that will end up in a header: line breaks and controls are refused."""
    if value is None:
        return None
    text = _str(value, where)
    bad = _HEADER_UNSAFE.search(text)
    if bad is not None:
        raise RequestError(f"{where}: must not contain CR, LF or other control or "
                           f"line-break characters (found {bad.group()!r} at {bad.start()})")
    return text


def unsafe_header_character(text: str) -> str | None:
    """The first character of ``text`` that must not appear in a header value, if any."""
    bad = _HEADER_UNSAFE.search(text)
    return None if bad is None else bad.group()


def _header_name(value: Any, where: str) -> str | None:
    if value is None:
        return None
    name = _str(value, where)
    if _HEADER_NAME.fullmatch(name) is None:
        raise RequestError(f"{where}: {name!r} is not a valid header name")
    return name


def _address(value: Any, where: str, *, allow_null: bool) -> EnvelopeAddress:
    text = _header_text(value, where) or ""
    try:
        return parse_envelope_address(text, allow_null=allow_null)
    except AddressError as exc:
        raise RequestError(f"{where}: {exc}") from None
