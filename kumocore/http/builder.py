"""Generating one recipient's message from an inject request.

``content`` as a string is a whole RFC 5322 message template: rendered, line endings made
CRLF, ``MIME-Version: 1.0`` added when missing. ``content`` as an object is built, as
KumoMTA's builder does:

* ``from``/``reply_to``/``subject`` become headers (they win over the same names in
  ``headers``); every header value is a template;
* ``text_body``, ``amp_html_body``, ``html_body`` → one part, or ``multipart/alternative``
  in that order (plain text first, HTML last, as RFC 2046 and the AMP spec want);
* attachments with a ``content_id`` are inline: ``multipart/related`` around the body;
  others make the whole a ``multipart/mixed``;
* ``To:`` is generated for the recipient unless a ``To`` header was given; ``Date`` and
  ``MIME-Version`` are added. The listener adds a ``Message-ID`` when there is none
  (``generate_message_id``, a kumocore addition; KumoMTA's builder adds none).

A rendered header value containing CR, LF or another control or line-break character
fails the recipient: a substitution must not be able to add header lines.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import uuid
from email.message import MIMEPart

from kumocore.http.inject_schema import (
    Attachment,
    Builder,
    InjectRecipient,
    InjectRequest,
    unsafe_header_character,
)
from kumocore.http.templating import Templates, template_context
from kumocore.mail.address import AddressError, parse_envelope_address
from kumocore.mail.headers import HeaderBlock, HeaderError, append_header
from kumocore.reception.trace import rfc2822_now

_POLICY = email.policy.SMTP  # CRLF line endings, RFC 2047 encoded headers
_ANY_EOL = re.compile(rb"\r\n|\r|\n")


class BuildError(ValueError):
    """The message for one recipient cannot be generated."""


def compile_templates(request: InjectRequest, max_rendered_size: int) -> Templates:
    """Every template of ``request``, compiled (raises TemplateFailure / BuildError)."""
    templates = Templates(request.template_dialect, max_rendered_size)
    content = request.content
    if isinstance(content, str):
        templates.add("content", content)
        return templates
    if content.text_body is None and content.html_body is None:
        raise BuildError("at least one of text_body and/or html_body must be given")
    for name, body in (("text", content.text_body), ("amp.html", content.amp_html_body),
                       ("html.html", content.html_body)):
        if body is not None:
            templates.add(name, body)
    for index, (_, value) in enumerate(_header_templates(content)):
        templates.add(f"header{index}", value)
    return templates


def content_size(request: InjectRequest) -> int:
    """Roughly how many bytes one recipient's message takes before substitution."""
    content = request.content
    if isinstance(content, str):
        return len(content)
    texts = [content.text_body, content.html_body, content.amp_html_body, content.subject,
             *content.headers.values()]
    return (sum(len(t) for t in texts if t is not None)
            + sum(len(a.data) * 4 // 3 for a in content.attachments))  # base64 in MIME


def build_message(
    request: InjectRequest, templates: Templates, recipient: InjectRecipient
) -> bytes:
    """The message bytes for ``recipient`` (raises TemplateFailure / BuildError)."""
    context = template_context(request, recipient)
    content = request.content
    if isinstance(content, str):
        return finish_rfc5322(templates.render("content", context).encode("utf-8"))
    headers = []
    mailboxes = {"From": content.from_, "Reply-To": content.reply_to}
    for index, (name, _) in enumerate(_header_templates(content)):
        value = templates.render(f"header{index}", context)
        bad = unsafe_header_character(value)
        if bad is not None:
            raise BuildError(f"header {name} contains CR or LF or another control or "
                             f"line-break character ({bad!r}) after substitution")
        if mailboxes.get(name) is not None:
            _check_mailbox(name, value)
        headers.append((name, value))
    message = _body(content, templates, context)
    for name, value in headers:
        del message[name]
        message[name] = value
    if "To" not in message:
        message["To"] = email.utils.formataddr((recipient.name or "", recipient.email))
    if "Date" not in message:
        message["Date"] = rfc2822_now()
    if "MIME-Version" not in message:
        message["MIME-Version"] = "1.0"
    try:
        return message.as_bytes(policy=_POLICY)
    except (ValueError, TypeError) as exc:
        raise BuildError(f"cannot build the message: {exc}") from None


def _check_mailbox(name: str, value: str) -> None:
    """The address of a rendered ``from``/``reply_to`` must be one (``f @example.com``, a
    template's output included, is not: RFC 5322 3.4.1)."""
    address = value[value.rindex("<") + 1:-1] if value.endswith(">") else value
    try:
        parse_envelope_address(address, allow_null=False)
    except AddressError as exc:
        raise BuildError(f"header {name}: {exc}") from None


def with_message_id(data: bytes, hostname: str) -> bytes:
    """``data`` with a ``Message-ID: <random@hostname>`` first, unless it has one."""
    if HeaderBlock(data).get_first("Message-ID") is not None:
        return data
    return f"Message-ID: <{uuid.uuid4().hex}@{hostname}>\r\n".encode() + data


def finish_rfc5322(data: bytes) -> bytes:
    """CRLF line endings, a final CRLF, a sound header block and ``MIME-Version``."""
    data = _ANY_EOL.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    try:
        block = HeaderBlock(data)
    except HeaderError as exc:
        raise BuildError(f"content is not a valid message: {exc}") from None
    if not block.fields:
        raise BuildError("content is not a valid message: it has no header fields")
    if block.get_first("MIME-Version") is None:
        data = append_header(data, "MIME-Version", "1.0")
    return data


def _header_templates(content: Builder) -> list[tuple[str, str]]:
    """(name, template) for every header, ``from``/``reply_to``/``subject`` included."""
    fields = {"from": content.from_, "reply-to": content.reply_to}
    shortcuts: dict[str, tuple[str, str]] = {}
    for key, mailbox in fields.items():
        if mailbox is not None:
            name = "From" if key == "from" else "Reply-To"
            try:
                value = email.utils.formataddr((mailbox.name or "", mailbox.email))
            except UnicodeError:
                raise BuildError(f"content.{key.replace('-', '_')}.email: a non-ASCII "
                                 "address cannot be written in a header") from None
            shortcuts[key] = (name, value)
    if content.subject is not None:
        shortcuts["subject"] = ("Subject", content.subject)
    headers = [(n, v) for n, v in content.headers.items() if n.lower() not in shortcuts]
    return headers + list(shortcuts.values())


def _body(content: Builder, templates: Templates, context: dict[str, object]) -> MIMEPart:
    """The MIME tree: alternative bodies, then related inline parts, then mixed."""
    bodies = [_leaf(subtype, templates.render(name, context))
              for subtype, name, body in (("plain", "text", content.text_body),
                                          ("x-amp-html", "amp.html", content.amp_html_body),
                                          ("html", "html.html", content.html_body))
              if body is not None]
    tree = bodies[0] if len(bodies) == 1 else _multipart("alternative", bodies)
    inline = [_attachment(a) for a in content.attachments if a.content_id]
    if inline:
        tree = _multipart("related", [tree, *inline])
    attached = [_attachment(a) for a in content.attachments if not a.content_id]
    if attached:
        tree = _multipart("mixed", [tree, *attached])
    return tree


def _leaf(subtype: str, text: str) -> MIMEPart:
    if "\0" in text:  # RFC 5322 2.3 and RFC 2045 2.7: no NUL in a text body, not even 8-bit
        raise BuildError(f"the {subtype} body contains a NUL character")
    part = MIMEPart(policy=_POLICY)
    # The stdlib content manager wants a final newline; MiniJinja drops the template's.
    part.set_content(text if text.endswith("\n") else text + "\n",
                     subtype=subtype, charset="utf-8")
    return part


def _attachment(attachment: Attachment) -> MIMEPart:
    maintype, subtype = attachment.content_type.split("/", 1)
    part = MIMEPart(policy=_POLICY)
    part.set_content(
        attachment.data, maintype=maintype, subtype=subtype,
        disposition="inline" if attachment.content_id else "attachment",
        filename=attachment.file_name,
        cid=f"<{attachment.content_id}>" if attachment.content_id else None)
    return part


def _multipart(subtype: str, parts: list[MIMEPart]) -> MIMEPart:
    container = MIMEPart(policy=_POLICY)
    container["Content-Type"] = f"multipart/{subtype}"
    for part in parts:
        container.attach(part)
    return container
