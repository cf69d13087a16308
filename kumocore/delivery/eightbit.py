"""What MAIL FROM must say about a message's 8-bit content, and when the MX cannot take it.

As KumoMTA's client does: a body (or head) with any octet over 127 is sent with
``BODY=8BITMIME`` (RFC 6152) and an envelope address that is not ASCII with ``SMTPUTF8``
(RFC 6531), when the MX offers the extension. When it does not, the message is refused
with a permanent ``554`` before anything is sent: passing 8-bit data to a server that
never agreed to it is what RFC 6152 forbids, and the cure (re-encoding during reception,
``msg:check_fix_conformance``) belongs to the policy. The egress path's
``ignore_8bit_checks`` sends such messages anyway, without the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from kumocore.mail.internal_responses import EIGHT_BIT_BODY, EIGHT_BIT_ENVELOPE
from kumocore.mail.response import Response

__all__ = ["EIGHT_BIT_BODY", "EIGHT_BIT_ENVELOPE", "mail_parameters"]


def mail_parameters(
    extensions: Mapping[str, str], *, sender: str, recipient: str, head: bytes, data: bytes,
    ignore_8bit_checks: bool = False,
) -> str | Response:
    """The parameters to append to ``MAIL FROM:<sender>`` (each with its leading space),
    or the ``554`` that refuses the message for this MX (see the module doc).

    ``extensions`` are the MX's EHLO keywords, upper-cased. ``bytes.isascii`` is one
    vectorised pass (about 3 us per 100 KB).
    """
    parameters = ""
    if not (data.isascii() and head.isascii()):
        if "8BITMIME" in extensions:
            parameters += " BODY=8BITMIME"
        elif not ignore_8bit_checks:
            return EIGHT_BIT_BODY
    if not (sender.isascii() and recipient.isascii()):
        if "SMTPUTF8" in extensions:
            parameters += " SMTPUTF8"
        elif not ignore_8bit_checks:
            return EIGHT_BIT_ENVELOPE
    return parameters
