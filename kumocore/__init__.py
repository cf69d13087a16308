"""kumocore: a mail transfer agent that runs KumoMTA-style policies and pluggy plugins.

The public API for plugins and Python policies lives here.

Owns the public API a plugin or Python policy may import (``hookimpl``, ``Rejection``,
``ConfigError``, ``policy_function``...). It does not own any part of the data path: that is
mapped, module by module, in docs/contributing.md ("The data path").
"""

from __future__ import annotations

from kumocore.errors import ConfigError, HookError, PolicyError, Rejection
from kumocore.hookspecs import hookimpl, hookspec
from kumocore.policyfn import policy_function, takes_table

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "HookError",
    "PolicyError",
    "Rejection",
    "__version__",
    "hookimpl",
    "hookspec",
    "policy_function",
    "takes_table",
]
