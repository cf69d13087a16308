"""Why new mail is turned away right now, in KumoMTA's words: the one answer that SMTP
admission (``421 4.3.2 <host> <reason>. Try later``), HTTP injection and transfers
(``503``) and the liveness check give.

Two states refuse it: memory use over the soft limit (:mod:`kumocore.node.memory`:
``load shedding``) and a spool that fails its writes (:mod:`kumocore.spool.health`). Two
attribute tests, so it is asked per connection and per request.
"""

from __future__ import annotations

from kumocore.node.memory import MEMORY
from kumocore.spool.health import HOLD

#: KumoMTA's reason while memory use is over the soft limit.
LOAD_SHEDDING = "load shedding"


def refusal() -> str | None:
    """The reason new mail is refused now; None while it is taken."""
    if MEMORY.over_limit:
        return LOAD_SHEDDING
    return HOLD.reason
