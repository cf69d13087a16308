"""``kumo.generate_rfc3464_message``: a delivery status notification from a log record.

KumoMTA's function and output: for a ``Bounce`` (ESMTP delivery) or an ``Expiration``
record, when the ``PARAMS`` enable that kind, a ``multipart/report`` message addressed
to the record's envelope sender, with a human-readable part, a ``message/delivery-status``
part and optionally the original message (``FullContent``) or its headers
(``HeadersOnly``). The message has the null sender, and nothing is generated for a
record whose sender is already null — so a DSN can never cause another DSN.
"""

from __future__ import annotations

import quopri
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kumocore.errors import ConfigError
from kumocore.mail.message import Message
from kumocore.policy.policyfn import policy_function

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost

WHO = "kumo.generate_rfc3464_message"
INCLUDE = ("FullContent", "HeadersOnly", "No")
_PARAMS = {"include_original_message", "enable_expiration", "enable_bounce",
           "reporting_mta", "stable_content"}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def check_params(params: Any) -> dict[str, Any]:
    """The PARAMS table, validated (unknown keys and wrong types are errors)."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{WHO}: PARAMS must be a table")
    unknown = set(params) - _PARAMS
    if unknown:
        raise ConfigError(f"{WHO}: unknown key {sorted(unknown)[0]!r} in PARAMS; allowed: "
                          f"{', '.join(sorted(_PARAMS))}")
    include = params.get("include_original_message")
    if include not in INCLUDE:
        raise ConfigError(f"{WHO}: include_original_message must be one of "
                          f"{', '.join(INCLUDE)}, got {include!r}")
    mta = params.get("reporting_mta")
    if not (isinstance(mta, Mapping) and isinstance(mta.get("mta_type"), str)
            and isinstance(mta.get("name"), str)):
        raise ConfigError(f"{WHO}: reporting_mta must be a table with mta_type and name")
    out = {"include_original_message": include,
           "reporting_mta": {"mta_type": mta["mta_type"], "name": mta["name"]}}
    for key in ("enable_expiration", "enable_bounce", "stable_content"):
        value = params.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{WHO}: {key} must be true or false, got {value!r}")
        out[key] = value
    return out


def rfc2822(when: datetime) -> str:
    """``Tue, 1 Jul 2003 08:52:37 +0000`` (day not zero-padded, as KumoMTA writes it)."""
    when = when.astimezone(UTC)
    return (f"{_DAYS[when.weekday()]}, {when.day} {_MONTHS[when.month - 1]} {when.year} "
            f"{when:%H:%M:%S} +0000")


def _when(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise ConfigError(f"{WHO}: LOG_RECORD has no usable date ({value!r:.40})")


def _single_line(response: Mapping[str, Any]) -> str:
    code = response.get("code")
    enhanced = response.get("enhanced_code")
    content = str(response.get("content", "")).replace("\r", "").replace("\n", " ")
    if isinstance(enhanced, Mapping):
        return f"{code} {enhanced['class']}.{enhanced['subject']}.{enhanced['detail']} {content}"
    return f"{code} {content}"


def _status(response: Mapping[str, Any]) -> str:
    enhanced = response.get("enhanced_code")
    content = str(response.get("content", "")).replace("\r", "").replace("\n", " ")
    if isinstance(enhanced, Mapping):
        code = f"{enhanced['class']}.{enhanced['subject']}.{enhanced['detail']}"
    else:
        number = int(response.get("code") or 0)
        code = "5.0.0" if number >= 500 else "2.0.0" if 200 <= number < 300 else "4.0.0"
    return f"{code} {content}"


def _recipients(record: Mapping[str, Any]) -> list[str]:
    value = record.get("recipient")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple | Mapping):
        items = value.values() if isinstance(value, Mapping) else value
        return [str(item) for item in items]
    raise ConfigError(f"{WHO}: LOG_RECORD has no recipient")


def _text_part(content_type: str, text: str) -> bytes:
    """A ``us-ascii`` text part, quoted-printable when a line is long or not ASCII."""
    body = text.encode("utf-8")
    head = f'Content-Type: {content_type};\r\n  charset="us-ascii"\r\n'
    lines = text.split("\r\n")
    if any(len(line) > 76 for line in lines) or not text.isascii():
        encoded = quopri.encodestring(body.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
        return (head + "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode() + encoded
    return (head + "\r\n").encode() + body


def _exposition(kind: str, record: Mapping[str, Any], created: datetime) -> str:
    text = (f"The message was received at {rfc2822(created)}\r\n"
            f"from {record['sender']} and addressed to "
            f"{', '.join(_recipients(record))}.\r\n")
    line = _single_line(record.get("response") or {})
    peer = record.get("peer_address")
    if kind == "Bounce" and isinstance(peer, Mapping):
        text += (f"While communicating with {peer.get('name')} ({peer.get('addr')}):\r\n"
                 f"Response: {line}\r\n\r\n")
    elif kind == "Bounce":
        text += f"Status: {line}\r\n\r\n"
    else:
        text += f"Status: {line}\r\n"
    return text + ("The message will be deleted from the queue.\r\n"
                   "No further attempts will be made to deliver it.\r\n")


def _status_part(params: Mapping[str, Any], record: Mapping[str, Any],
                 created: datetime) -> str:
    mta = params["reporting_mta"]
    response = record.get("response") or {}
    text = (f"Reporting-MTA: {mta['mta_type']}; {mta['name']}\r\n"
            f"Arrival-Date: {rfc2822(created)}\r\n\r\n")
    peer = record.get("peer_address")
    last = rfc2822(_when(record.get("timestamp", record.get("created"))))
    for recipient in _recipients(record):
        text += (f"Final-Recipient: rfc822;{recipient}\r\n"
                 "Action: failed\r\n"
                 f"Status: {_status(response)}\r\n")
        if isinstance(peer, Mapping):
            text += f"Remote-MTA: dns; {peer.get('name')}\r\n"
        text += (f"Diagnostic-Code: smtp; {_single_line(response)}\r\n"
                 f"Last-Attempt-Date: {last}\r\n\r\n")
    return text


def _original_part(include: str, original: bytes | None) -> bytes | None:
    if include == "No" or not original:
        return None
    if include == "FullContent":
        return b"Content-Type: message/rfc822\r\n\r\n" + original
    end = original.find(b"\r\n\r\n")
    headers = original if end < 0 else original[: end + 2]
    return b"Content-Type: text/rfc822-headers\r\n\r\n" + headers


def generate_report(
    params: Any, original: bytes | None, record: Mapping[str, Any]
) -> bytes | None:
    """The report's bytes, or None when this record gets no report (see module doc)."""
    checked = check_params(params)
    sender = record.get("sender")
    kind = record.get("type")
    if not sender:
        return None  # never a report to the null sender
    if not ((kind == "Bounce" and checked["enable_bounce"]
             and record.get("delivery_protocol") == "ESMTP")
            or (kind == "Expiration" and checked["enable_expiration"])):
        return None
    created = _when(record.get("created"))
    name = checked["reporting_mta"]["name"]
    stable = checked["stable_content"]
    boundary = "report-boundary" if stable else f"report-{uuid.uuid4().hex}"
    parts = [_text_part("text/plain", _exposition(str(kind), record, created)),
             _text_part("message/delivery-status", _status_part(checked, record, created))]
    original_part = _original_part(checked["include_original_message"], original)
    if original_part is not None:
        parts.append(original_part)
    message_id = f"<UUID@{name}>" if stable else f"<{uuid.uuid1()}@{name}>"
    head = (f'Content-Type: multipart/report;\r\n  boundary="{boundary}";\r\n'
            '  report-type="delivery-status"\r\n'
            "Subject: Returned mail\r\n"
            "Mime-Version: 1.0\r\n"
            f"Message-ID: {message_id}\r\n"
            f"To: {sender}\r\n"
            f"From: Mail Delivery Subsystem <mailer-daemon@{name}>\r\n\r\n").encode()
    body = b"".join(f"--{boundary}\r\n".encode() + part
                    + (b"" if part.endswith(b"\r\n") else b"\r\n") for part in parts)
    return head + body + f"--{boundary}--\r\n".encode()


def make_dsn_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    """The ``generate_rfc3464_message`` entry of ``kumo_register_policy_functions``."""

    @policy_function(table=False)
    async def generate_rfc3464_message(
        params: Any, original: Any, log_record: Any
    ) -> Message | None:
        """``kumo.generate_rfc3464_message(PARAMS, OPT_ORIG_MSG, LOG_RECORD)``: a DSN
        message (null sender, to the record's sender), or nil."""
        if not isinstance(log_record, Mapping):
            raise ConfigError(f"{WHO}: LOG_RECORD must be a log record table")
        if original is not None and not isinstance(original, Message):
            raise ConfigError(f"{WHO}: OPT_ORIG_MSG must be a message or nil")
        data = None
        if original is not None:
            data = original.data
            if not data and runtime.services is not None:  # released: read the spool
                data = await runtime.services.queues.load_data(original)
        report = generate_report(params, data, log_record)
        if report is None:
            return None
        return Message("<>", str(log_record["sender"]), report)

    return {"generate_rfc3464_message": generate_rfc3464_message}
