"""Trace headers added at reception: ``Received:`` and KumoMTA's supplemental header.

``Received:`` follows KumoMTA's layout (``from <ehlo> (<ip>) by <hostname> (... <ip>)
with <protocol> id <id> for <recipient>; <date>``), with the RFC 3848 protocol name
(ESMTP, ESMTPS with TLS, ESMTPA/ESMTPSA after AUTH) so a reader can tell how the message
arrived. It is prepended before ``smtp_server_message_received`` runs, so the policy (and a
DKIM signature made there) sees it.

The supplemental header (``X-KumoRef`` by default) is base64 of a small JSON object with a
marker, the recipient and the meta values named in ``include_meta_names``. It is added
*after* the event, as KumoMTA does. When the message later bounces out of band or comes
back in a feedback report, the header travels with the returned copy and lets the OOB/ARF
parsers recover the original recipient (``supplemental_trace``).
"""

from __future__ import annotations

import base64
import email.utils
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from kumocore.mail.address import recipient_json

if TYPE_CHECKING:
    from kumocore.mail.message import Message

#: The marker KumoMTA puts in the supplemental header (the JSON string ``\_/``).
SUPPLEMENTAL_MARKER = "\\_/"


#: The last date rendered by :func:`rfc2822_now`: (unix second, text).
_last_date: tuple[int, str] = (-1, "")


def rfc2822_now() -> str:
    """The current time as a header date, e.g. ``Tue, 01 Jul 2025 10:52:37 +0000``."""
    # The text has one-second resolution and every message gets one: render it once per
    # second rather than per message (format_datetime is ~5 us).
    global _last_date
    second = math.floor(time.time())
    if _last_date[0] != second:
        _last_date = (second, email.utils.format_datetime(datetime.fromtimestamp(second, UTC)))
    return _last_date[1]


def protocol_name(*, tls: bool, authenticated: bool) -> str:
    """The RFC 3848 ``with`` keyword for the ``Received:`` header."""
    return "ESMTP" + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(
    *,
    ehlo_domain: str | None,
    peer_ip: str,
    hostname: str,
    local_ip: str,
    protocol: str,
    message_id: str,
    recipient: str,
    date: str,
) -> bytes:
    """The complete ``Received:`` field, folded, ending in CRLF."""
    helo = _printable(ehlo_domain) if ehlo_domain else "unspecified"
    return (
        f"Received: from {helo} ({peer_ip})\r\n"
        f"\tby {hostname} (kumocore {local_ip})\r\n"
        f"\twith {protocol} id {message_id}\r\n"
        f"\tfor <{recipient}>;\r\n"
        f"\t{date}\r\n"
    ).encode()


def add_supplemental_header(
    message: Message, header_name: str, include_meta_names: Sequence[str]
) -> None:
    """Prepend KumoMTA's supplemental trace header to ``message``: base64 of a JSON object
    with sorted keys (serde_json's map), a meta name the message lacks as ``null`` (as
    KumoMTA's ``get_meta`` answers), folded every :data:`FOLD_WIDTH` characters."""
    payload: dict[str, object] = {
        "_@_": SUPPLEMENTAL_MARKER,
        "recipient": recipient_json(message.recipients),
    }
    for name in include_meta_names:
        payload[name] = message.meta.get(name)
    encoded = base64.b64encode(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
    message.prepend_header(header_name, fold_token(encoded.decode("ascii")))


#: KumoMTA folds the supplemental header's base64 at this column (its header wrapper's
#: soft width, used as the hard width for a token without spaces).
FOLD_WIDTH = 75


def fold_token(token: str, width: int = FOLD_WIDTH) -> str:
    """``token`` (no white space) cut into lines of ``width`` characters, each after the
    first starting with a tab. KumoMTA's wrapper leaves a CRLF at the end when the length
    is a multiple of ``width``, which would end the header block; here it does not."""
    if len(token) <= width:
        return token
    return "\r\n\t".join(token[at : at + width] for at in range(0, len(token), width))


def decode_supplemental(value: str) -> dict[str, object] | None:
    """The JSON object of a supplemental header value (folded or not), None when it is
    not one."""
    try:
        decoded = orjson.loads(base64.b64decode("".join(value.split()), validate=True))
    except ValueError:
        return None
    if isinstance(decoded, dict) and decoded.get("_@_") == SUPPLEMENTAL_MARKER:
        return decoded
    return None


def _printable(text: str) -> str:
    # The EHLO argument is client-controlled; it already has no CR/LF (the command reader
    # refuses those), and anything outside printable text is replaced so that a header
    # reader never trips over it.
    if text.isprintable() and "(" not in text and ")" not in text:
        return text
    return "".join(c if c.isprintable() and c not in "()" else "?" for c in text)
