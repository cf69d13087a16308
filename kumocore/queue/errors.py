"""Why a due message found no egress path (raised by routing and by ``custom_lua``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kumocore.mail.response import Response


class RoutingError(Exception):
    """A lookup needed for delivery failed; ``response`` is what the log will say.
    ``retry_after``: seconds until the message may be routed again, instead of its
    queue's retry schedule (every source of its pool is suspended until then)."""

    def __init__(self, response: Response, retry_after: float | None = None) -> None:
        super().__init__(response.to_single_line())
        self.response = response
        self.retry_after = retry_after
