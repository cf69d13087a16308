"""String arguments of ``kumo.*`` functions, read as KumoMTA's mlua reads them.

mlua converts a Lua value to a Rust ``String`` with ``coerce_string``: a string as is, a
number as Lua's ``tostring`` writes it, anything else (nil, a boolean, a table) is an
error naming the conversion. Functions implemented in Python otherwise fail on such a
value with a Python message about ``NoneType``; :func:`string_arg` gives the Lua reading
and a refusal that names the function and the argument.
"""

from __future__ import annotations

from typing import Any

from kumocore import ConfigError, lua_type_name


def lua_number_text(value: int | float) -> str:
    """A number as Lua 5.4's ``tostring`` writes it: ``42``, ``1.5``, ``2.0``, ``1e+100``."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.14g}"
    # Lua marks a float that reads like an integer with ".0", as lua_Number2str does.
    return f"{text}.0" if text.lstrip("-").isdigit() else text


def string_arg(function: str, what: str, value: Any) -> str:
    """``value`` as the string KumoMTA's ``function`` would receive, or a ConfigError
    ("kumo.string.split: TEXT must be a string or a number, got nil")."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return lua_number_text(value)
    raise ConfigError(f"{function}: {what} must be a string or a number, "
                      f"got {lua_type_name(value)}")


def number_arg(function: str, what: str, value: Any) -> int | float:
    """``value`` as the number KumoMTA's ``function`` would receive: a number, or a string
    holding one (mlua coerces those as Lua does), else a ConfigError naming the argument."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value.strip())
            except ValueError:
                pass
    raise ConfigError(f"{function}: {what} must be a number, got {lua_type_name(value)}")
