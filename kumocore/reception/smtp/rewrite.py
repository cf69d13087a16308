"""``smtp_server_rewrite_response``: the policy's last word on each reply of a session.

The listener calls :func:`rewrite_reply` for every reply it sends from a command (not for
the unilateral ones it writes while aborting: idle timeouts, shutdown). A handler error is
logged and the reply goes out unchanged — as in KumoMTA, where ``kumo.reject`` cannot be
used here. A rewritten 421 closes the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import structlog

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

log = structlog.get_logger("kumocore.reception.smtp")


class Replying(Protocol):
    """What a rewrite reads of the session (structural: the session uses this module)."""

    @property
    def command(self) -> str: ...
    @property
    def conn_meta(self) -> dict[str, Any]: ...
    @property
    def runtime(self) -> Runtime: ...


async def rewrite_reply(session: Replying, code: int, text: str) -> tuple[int, str]:
    """The ``(code, text)`` to send instead of ``code text``."""
    verb = session.command.split(" ", 1)[0].upper() or None
    try:
        return await session.runtime.hooks.smtp_server_rewrite_response(
            code, text, verb, session.conn_meta)
    except Exception as exc:
        log.error("smtp_server_rewrite_response failed; reply unchanged",
                  code=code, error=str(exc))
        return code, text
