"""How failures cross the bridge: Lua errors become :class:`LuaPolicyError`, rejections don't.

Two rules from the hook contract shape this module:

* ``kumo.reject(code, text)`` raises :class:`kumocore.Rejection`; it travels through Lua as
  the error value and comes out of the hook as the *same* object, never wrapped.
* Everything else — a Lua runtime error, a syntax error, a failing ``kumo.*`` function —
  becomes a :class:`kumocore.PolicyError` (our subclass) whose ``where`` is the policy's
  ``file:line``, so an operator reads ``policy.lua:259: bad argument #1 to 'for iterator'``.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from kumocore import ConfigError, PolicyError, Rejection

#: ``chunk:line: message`` as Lua formats positions (``.`` also matches newlines).
_POSITION = re.compile(r"^(?P<src>.*?):(?P<line>\d+): (?P<rest>.*)$", re.DOTALL)


class LuaPolicyError(PolicyError):
    """A Lua policy failed. ``where`` is ``file:line``; ``lua_traceback`` is Lua's stack."""

    def __init__(
        self, message: str, *, where: str | None = None, lua_traceback: str | None = None
    ) -> None:
        super().__init__(message, where=where)
        self.lua_traceback = lua_traceback
        if lua_traceback:
            self.add_note(f"Lua {lua_traceback}")  # shown with the Python traceback


class KumoCallError:
    """A Python exception raised by a ``kumo.*`` function (or message method) called from Lua.

    It is the Lua error value (so a policy's ``pcall`` can catch it and ``tostring`` it) and
    remembers which function failed, which the exception text alone often doesn't say.
    """

    __slots__ = ("exc", "name")

    def __init__(self, name: str, exc: BaseException) -> None:
        self.name = name
        self.exc = exc

    def __str__(self) -> str:
        text = str(self.exc) or type(self.exc).__name__
        if not isinstance(self.exc, ConfigError | ValueError):
            text = f"{type(self.exc).__name__}: {text}"
        bare = self.name.removeprefix("kumo.")
        if text.startswith((self.name, bare)):
            return text if text.startswith(self.name) else f"kumo.{text}"
        return f"{self.name}: {text}"

    def __repr__(self) -> str:
        return f"<KumoCallError {self}>"


def scrub(exc: BaseException) -> BaseException:
    """Drop the local variables of the finished frames in ``exc``'s traceback (and its
    causes'), keeping file names and lines.

    Lua values that reach a Python callback are tied (by lupa) to the stack of the running
    coroutine; a traceback that keeps them alive past that coroutine makes lupa touch a
    freed stack when it finally releases them. Callbacks scrub what they raise.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__
    return exc


def _get(info: Any, key: str) -> Any:
    try:
        return info[key]
    except (KeyError, TypeError):
        return None


def error_from_info(info: Any) -> BaseException:
    """The exception for the error table built by the bridge's ``on_error`` handler."""
    value = _get(info, "value")
    if isinstance(value, Rejection):
        return value
    where = _get(info, "where")
    traceback = _get(info, "traceback")
    if isinstance(value, KumoCallError):
        error = LuaPolicyError(str(value), where=where, lua_traceback=traceback)
        error.__cause__ = value.exc
        return error
    detail = _get(info, "detail") or "unknown Lua error"
    error = LuaPolicyError(str(detail), where=where, lua_traceback=traceback)
    if isinstance(value, BaseException):
        error.__cause__ = value
    return error


def load_error(path: str, message: str) -> LuaPolicyError:
    """A syntax (or read) error from ``loadfile``: Lua abbreviates long names, so put the
    full path back when the message names this file."""
    match = _POSITION.match(message)
    if match is None:
        return LuaPolicyError(message, where=path)
    src = match["src"].removeprefix("...")
    where = f"{path}:{match['line']}" if path.endswith(src) else f"{src}:{match['line']}"
    return LuaPolicyError(match["rest"], where=where)
