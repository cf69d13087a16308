"""Calls from Lua whose argument count does not fit the Python function, read as Lua reads
them.

In Lua (and in KumoMTA's mlua functions) a trailing ``nil`` argument is the same as one
left out: ``msg:get_meta('x', nil)`` or a wrapper that forwards ``...`` works there. A
Python function refuses the extra ``None`` with its own words ("takes 2 positional
arguments but 3 were given"). :func:`call_fitting` drops trailing ``None`` arguments when,
and only when, the call did not bind to the function's parameters, so the function had
not run yet; :func:`misfit` says what did not fit in a policy author's words. Both look at
the signature only after a ``TypeError``: a call that works costs nothing more.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["call_fitting", "misfit"]


def _binds(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> bool | None:
    """Whether ``fn(*args, **kwargs)`` fits its parameters; None without a signature."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:  # a builtin without a signature
        return None
    return True


def call_fitting(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)``; when that does not bind and the arguments end in ``None``,
    the call again without as many of them as it takes to fit."""
    try:
        return fn(*args, **kwargs)
    except TypeError:
        if not args or args[-1] is not None or _binds(fn, args, kwargs) is not False:
            raise  # raised inside fn, or nothing to drop
        end = len(args)
        while end and args[end - 1] is None:
            end -= 1
            if _binds(fn, args[:end], kwargs):
                return fn(*args[:end], **kwargs)
        raise


def misfit(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
    """Why ``args`` do not fit ``fn`` ("missing a required argument: 'key' (called with 0
    argument(s))"); None when they do, or when ``fn`` has no signature to tell."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        return f"{exc} (called with {len(args) + len(kwargs)} argument(s))"
    except ValueError:
        return None
    return None
