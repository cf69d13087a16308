"""Why a due message found no egress path (raised by routing and by ``custom_lua``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kumocore.mail.response import Response


class RoutingError(Exception):
    """A lookup needed for delivery failed; ``response`` is what the log will say."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.to_single_line())
        self.response = response
