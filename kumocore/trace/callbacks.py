"""The listener's ``Callback`` trace events: each policy event run for a session.

KumoMTA sends ``{"Callback": {"name", "result", "error"}}`` for every policy callback it
runs for an SMTP session (``smtp_server_ehlo``, ``smtp_server_mail_from``,
``smtp_server_rcpt_to``, ``smtp_server_data``, ``smtp_server_message_received``,
``get_listener_domain domain=...``...). The hook facade (:mod:`kumocore.policy.hooks`)
wraps the call in :func:`traced_callback` only while ``SERVER_TRACE.active``, so the
events cost one attribute test while nobody traces. Kept apart from
:mod:`kumocore.trace.events` so that the facade imports nothing of the listener.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from kumocore.trace.bus import SERVER_TRACE

T = TypeVar("T")


def _as_is(result: Any) -> Any:
    return result


async def traced_callback(
    conn_meta: dict[str, Any],
    name: str,
    call: Awaitable[T],
    shown: Callable[[T], Any] = _as_is,
) -> T:
    """Await ``call`` (a policy event run for the session ``conn_meta``) and trace it as
    KumoMTA's ``Callback``: ``result`` is what the handler answered (``shown`` picks it out
    of the facade's result; null for an event that answers nothing), ``error`` the text
    of what it raised (a rejection too), which goes on up."""
    try:
        result = await call
    except Exception as exc:
        trace_callback(conn_meta, name, error=str(exc))
        raise
    trace_callback(conn_meta, name, result=shown(result))
    return result


def trace_callback(
    conn_meta: dict[str, Any], name: str, *, result: Any = None, error: str | None = None
) -> None:
    """Publish one ``Callback`` event; ``result`` as JSON (a config object as its
    table, anything else JSON cannot hold as its text)."""
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
    if result is not None and not isinstance(result, (bool, int, float, str)):
        try:
            result = orjson.loads(orjson.dumps(result, default=str, option=orjson.OPT_NON_STR_KEYS))
        except TypeError:  # e.g. an integer too big for JSON numbers
            result = str(result)
    SERVER_TRACE.publish(conn_meta, "Callback", {"name": name, "result": result, "error": error})
