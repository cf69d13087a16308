"""Loading a Python policy: the file imported as a module of ``@hookimpl`` functions.

The built-in plugin (:mod:`kumocore.policy.builtins`) registers :func:`load_python_policy`
for ``.py`` policy files; a failure names the policy file and line.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from typing import TYPE_CHECKING

from kumocore.errors import ConfigError, PolicyError

if TYPE_CHECKING:
    from kumocore.policy.kumo_api import Kumo


def load_python_policy(path: str, kumo: Kumo) -> object:
    """Import a Python policy module (a module of ``@hookimpl`` functions)."""
    module_name = f"kumocore_policy_{abs(hash(path)):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load Python policy {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise PolicyError(f"syntax error: {exc.msg}", where=f"{path}:{exc.lineno}") from exc
    except Exception as exc:
        raise PolicyError(f"{type(exc).__name__}: {exc}", where=_where(path, exc)) from exc
    return module


def _where(path: str, exc: BaseException) -> str:
    """``file:line`` of the deepest frame of ``exc`` inside the policy file."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == path:
            line = lineno
    return f"{path}:{line}" if line else path
