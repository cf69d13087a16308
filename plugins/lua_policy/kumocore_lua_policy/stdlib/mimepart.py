"""``kumo.mimepart.*`` for policies: core's functions (``kumocore.mimepart_functions``),
those whose content may be binary marked so that a Lua byte string that is not UTF-8
(an attachment's data) reaches them as ``bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kumocore import BINARY_MIMEPART_FUNCTIONS
from kumocore import mimepart_functions as core_functions
from kumocore_lua_policy.byte_strings import takes_bytes


def mimepart_functions() -> dict[str, Callable[..., Any]]:
    return {
        name: takes_bytes(function) if name in BINARY_MIMEPART_FUNCTIONS else function
        for name, function in core_functions().items()
    }
