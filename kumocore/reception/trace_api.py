"""``kumo.apply_supplemental_trace_header(msg[, params])``: the listeners' supplemental
trace header, on demand.

A policy that builds or relays mail itself (``kumo.make_message``, a message taken from
another path) can stamp it with the same ``X-KumoRef``-style header that the ESMTP listener
adds for ``trace_headers``, so out-of-band bounces and feedback reports for it can be
traced back too. ``params`` is the listener's ``trace_headers`` table, checked the same
way (unknown keys and wrong types are errors naming the key); only ``supplemental_header``,
``header_name`` and ``include_meta_names`` matter here, as in KumoMTA.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kumocore.config.listeners import TraceHeaders
from kumocore.errors import ConfigError
from kumocore.mail.message import Message
from kumocore.reception.trace import add_supplemental_header

FUNCTION = "kumo.apply_supplemental_trace_header"
#: RFC 5322 field name: printable ASCII except the colon. Anything else would turn the
#: header into a broken line or into a header the policy did not mean to write.
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")


def apply_supplemental_trace_header(
    message: Message, params: Mapping[str, Any] | None = None
) -> None:
    """Prepend the supplemental trace header to ``message`` as ``params`` describe (the
    defaults of a listener's ``trace_headers`` when None); does nothing when
    ``params.supplemental_header`` is false."""
    if not isinstance(message, Message):
        raise ConfigError(f"{FUNCTION}: expected a message, got {message!r:.60}")
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"{FUNCTION}: params must be a table, got {params!r:.60}")
    trace = TraceHeaders.from_options(params, function=FUNCTION)
    if not trace.supplemental_header:
        return
    if _FIELD_NAME.fullmatch(trace.header_name) is None:
        raise ConfigError(
            f"{FUNCTION}: header_name {trace.header_name!r} is not a valid header name"
        )
    add_supplemental_header(message, trace.header_name, trace.include_meta_names)
