"""``kumo.serde.*`` and the older top-level aliases: JSON, TOML and YAML data files.

KumoMTA's helper modules read their data files with these (``kumo.toml_load``,
``kumo.serde.json_parse``...), so errors matter: a bad file is reported with its name and
the line/column the parser stopped at, which is what an operator needs to fix it.

``json_load`` accepts comments as KumoMTA documents (``/* */``, ``//`` and ``#``): they are
replaced by spaces outside strings before parsing, which keeps reported columns right.
The TOML text is kumocore's (:mod:`kumocore.config.toml_text`, through its public API),
the one ``kumo.format_*_toml`` and kcli print; the standard library only reads TOML.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import yaml

import kumocore
from kumocore import ConfigError, jsonable, lua_type_name
from kumocore.regular_file import read_regular_text
from kumocore_lua_policy.stdlib.arguments import string_arg


def _read(name: str, path: Any) -> str:
    path = string_arg(name, "PATH", path)
    try:
        return read_regular_text(path)  # a FIFO or a device would hold the loop
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: {path!r} is not UTF-8 text: {exc}") from None


# ----------------------------------------------------------------------------------- JSON
def _strip_json_comments(text: str) -> str:
    """Blank out ``/* */``, ``//`` and ``#`` comments outside strings (same length)."""
    out = list(text)
    i, n, in_string = 0, len(text), False
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            in_string = c != '"'
        elif c == '"':
            in_string = True
        elif c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out[i:end] = [ch if ch == "\n" else " " for ch in text[i:end]]
            i = end
            continue
        i += 1
    return "".join(out)


def json_parse(text: Any, *, source: str = "kumo.serde.json_parse") -> Any:
    if not isinstance(text, bytes):
        text = string_arg(source, "TEXT", text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from None


def json_load(path: Any) -> Any:
    text = _strip_json_comments(_read("kumo.serde.json_load", path))
    return json_parse(text, source=f"kumo.serde.json_load: {path}")


# A Lua table that is not a sequence arrives as a dict whose keys may be numbers; KumoMTA's
# serde_json writes such keys as strings ({[2] = 'x'} -> {"2":"x"}), and so does orjson here.
_KEYS = orjson.OPT_NON_STR_KEYS


def json_encode(value: Any) -> str:
    return orjson.dumps(_plain(value), default=jsonable, option=_KEYS).decode()


def json_encode_pretty(value: Any) -> str:
    options = orjson.OPT_INDENT_2 | _KEYS
    return orjson.dumps(_plain(value), default=jsonable, option=options).decode()


# ----------------------------------------------------------------------------------- TOML
def toml_parse(text: Any, *, source: str = "kumo.serde.toml_parse") -> Any:
    text = string_arg(source, "TEXT", text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None


def toml_load(path: Any) -> Any:
    return toml_parse(_read("kumo.serde.toml_load", path), source=f"kumo.serde.toml_load: {path}")


def _toml_encoder(render: Callable[[Mapping[Any, Any]], str]) -> Callable[[Any], str]:
    """``render`` (kumocore's TOML text, shared with ``kumo.format_*_toml``) behind the
    checks a Lua value needs: a table at the top, and values TOML can hold."""

    def encode(value: Any) -> str:
        value = _plain(value)
        if not isinstance(value, Mapping):
            raise ConfigError("kumo.serde.toml_encode: only a table of key/value pairs can be "
                              f"encoded as a TOML document, got {lua_type_name(value)}")
        try:
            return render(value)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    return encode


# ----------------------------------------------------------------------------------- YAML
def yaml_parse(text: Any, *, source: str = "kumo.serde.yaml_parse") -> Any:
    text = string_arg(source, "TEXT", text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None


def yaml_load(path: Any) -> Any:
    return yaml_parse(_read("kumo.serde.yaml_load", path), source=f"kumo.serde.yaml_load: {path}")


def yaml_encode(value: Any) -> str:
    return str(yaml.safe_dump(_plain(value), sort_keys=False, allow_unicode=True))


def _plain(value: Any) -> Any:
    """Lua's empty table arrives as ``{}``; tuples as lists — what encoders expect."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def serde_functions() -> dict[str, Callable[..., Any]]:
    """``kumo.serde.*`` plus the deprecated top-level names KumoMTA still accepts.

    ``kumo.json_parse``/``json_encode``/``json_encode_pretty`` are core functions already.
    """
    toml_encode = _toml_encoder(kumocore.toml_encode)
    toml_encode_pretty = _toml_encoder(kumocore.toml_encode_pretty)
    functions: dict[str, Callable[..., Any]] = {
        "serde.json_parse": json_parse,
        "serde.json_load": json_load,
        "serde.json_encode": json_encode,
        "serde.json_encode_pretty": json_encode_pretty,
        "serde.toml_parse": toml_parse,
        "serde.toml_load": toml_load,
        "serde.toml_encode": toml_encode,
        "serde.toml_encode_pretty": toml_encode_pretty,
        "serde.toml_encode_pretty_compact": _toml_encoder(kumocore.toml_encode_pretty_compact),
        "serde.yaml_parse": yaml_parse,
        "serde.yaml_load": yaml_load,
        "serde.yaml_encode": yaml_encode,
        "json_load": json_load,
        "toml_parse": toml_parse,
        "toml_load": toml_load,
        "toml_encode": toml_encode,
        "toml_encode_pretty": toml_encode_pretty,
    }
    return functions
