"""``kumo.version``: the version of the running kumocore.

In KumoMTA ``kumo.version`` is a string constant (``print(kumo.version)``), there the
release's ``date-commit`` (``2025.11.09-d4028f99``). Here it is kumocore's own version
(``kumocore --version``), so a policy can log what it runs on or branch on it; comparing
it with KumoMTA release strings means nothing. Lua policies get the string: ``install_stdlib``
puts it in place of the function. The ``kumo`` object of Python policies holds functions
only, so there it is ``kumo.version()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kumocore import __version__


def version() -> str:
    """kumocore's version: ``kumo.version`` in Lua (a string), ``kumo.version()`` in Python."""
    return __version__


def version_functions() -> dict[str, Callable[..., Any]]:
    return {"version": version}
