"""The core's ``kumo.*`` functions that need no runtime: replies, JSON and diagnostic logs.

``kumo.reject``/``kumo.disconnect`` refuse with an SMTP reply, ``kumo.json_*`` encode and
decode JSON as KumoMTA's do, and ``kumo.log_*`` write one diagnostic record naming the
calling policy line. The built-in plugin (:mod:`kumocore.policy.builtins`) registers them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from kumocore.errors import DISCONNECT_DISPOSITIONS, ConfigError, Rejection
from kumocore.policy.jsonable import jsonable
from kumocore.policy.policyfn import string_argument

policy_log = structlog.get_logger("kumocore.policy")


def _reply(who: str, code: Any, message: Any) -> tuple[int, str]:
    """The checked ``(code, text)`` of ``kumo.reject``/``kumo.disconnect``."""
    string_argument(who, "the reply text", message)  # (nil became the reply text "None")
    try:
        number = int(code)
    except (TypeError, ValueError):
        raise ConfigError(f"{who}: the code must be a number, got {code!r}") from None
    return number, message


def _reject(code: int, message: str) -> None:
    """``kumo.reject(code, text)``: refuse with that SMTP reply."""
    raise Rejection(*_reply("kumo.reject", code, message))


def _disconnect(code: int, message: str, disposition: Any = None) -> None:
    """``kumo.disconnect(code, text[, disposition])``: refuse and (by default) end the SMTP
    session; ``disposition`` is ``ForceDisconnect`` (default), ``FollowWith421``, ``If421``."""
    disposition = "ForceDisconnect" if disposition is None else disposition
    if disposition not in DISCONNECT_DISPOSITIONS:
        raise ConfigError(
            "kumo.disconnect: expected one of 'If421', 'FollowWith421' or "
            f"'ForceDisconnect', but got {disposition!r}"
        )
    number, text = _reply("kumo.disconnect", code, message)
    raise Rejection(number, text, disposition=disposition)


def _json_encode(value: Any) -> str:
    # A Lua table with number keys ({[2] = 'x'}) is an object with string keys, as in KumoMTA.
    return orjson.dumps(value, default=jsonable, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_encode_pretty(value: Any) -> str:
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(value, default=jsonable, option=options).decode()


def _json_decode(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"kumo.json_decode: invalid JSON: {exc}") from exc


#: The attribute of each ``kumo.log_*`` function that logs an already rendered record,
#: ``fn.with_location(where, text)``: the Lua bridge renders the arguments as Lua's
#: ``tostring`` would and finds the calling file:line on the Lua stack, then calls it.
LOG_WITH_LOCATION = "with_location"


def _log_text(value: Any) -> str:
    """An argument of a Python caller as log text: ``str(value)``; bytes as text, each byte
    that is not part of valid UTF-8 written ``\\xNN`` (as KumoMTA writes a Lua string's)."""
    if not isinstance(value, bytes | bytearray):
        return str(value)
    data, out = bytes(value), []
    while data:
        try:
            out.append(data.decode())
            break
        except UnicodeDecodeError as exc:
            out.append(data[: exc.start].decode())
            out.extend(f"\\x{b:02X}" for b in data[exc.start : exc.end])
            data = data[exc.end :]
    return "".join(out)


def _policy_logger(level: str) -> Callable[..., None]:
    """``kumo.log_<level>(...)``: one diagnostic record ``file:line: arg arg ...``, naming
    the caller's file and line as KumoMTA does (``./policy.lua:3: hello true 42``)."""
    log = getattr(policy_log, level)

    def with_location(where: str, text: str) -> None:
        log(f"{where}: {text}")

    def emit(*parts: Any) -> None:
        caller = sys._getframe(1)
        with_location(
            f"{caller.f_code.co_filename}:{caller.f_lineno}", " ".join(_log_text(p) for p in parts)
        )

    emit.__name__ = f"log_{level}"
    setattr(emit, LOG_WITH_LOCATION, with_location)
    return emit


def make_basic_functions() -> dict[str, Callable[..., Any]]:
    """``kumo.reject``, ``kumo.disconnect``, ``kumo.json_*`` and ``kumo.log_*``."""
    functions: dict[str, Callable[..., Any]] = {
        "reject": _reject,
        "disconnect": _disconnect,
        "json_encode": _json_encode,
        "json_encode_pretty": _json_encode_pretty,
        "json_decode": _json_decode,
        "json_parse": _json_decode,
    }
    for level in ("debug", "info", "warn", "error"):
        functions[f"log_{level}"] = _policy_logger("warning" if level == "warn" else level)
    return functions
