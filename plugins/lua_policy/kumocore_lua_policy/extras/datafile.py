"""Reading the helpers' data files (TOML or JSON) and reporting what is wrong with them.

Every error names the file, the key path inside it (``source."ip-1".weight``) and what was
expected, so ``kumocore validate`` can say exactly which line of which file to fix. The
checks are done here, in Python, once when the policy calls ``setup``, not lazily in Lua
at the first message.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from kumocore import ConfigError, lua_type_name
from kumocore.config.options import Options
from kumocore.regular_file import read_regular_file

OptionsT = TypeVar("OptionsT", bound=Options)
_BARE = re.compile(r"[A-Za-z0-9_]+")


class DataFileError(ConfigError):
    """A helper's data file is unreadable or holds something the helper cannot use."""

    def __init__(self, helper: str, file: str, key: str, problem: str) -> None:
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(f"{helper}: {where}{problem}")
        self.helper, self.file, self.key, self.problem = helper, file, key, problem


def quote(part: str) -> str:
    """A TOML key part: bare when it can be (``weight``), else quoted (``"ip-1"``)."""
    return part if _BARE.fullmatch(part) else json.dumps(part)


def key_path(prefix: str, *parts: str) -> str:
    """``pool."p-1"."ip-1"``: ``prefix`` (an already written path, or "") then ``parts``
    in TOML's dotted-key syntax."""
    quoted = [quote(p) for p in parts]
    return ".".join([prefix, *quoted] if prefix else quoted)


def file_list(helper: str, files: Any) -> list[str | dict[str, Any]]:
    """The ``{ 'a.toml', 'b.json' }`` list a helper's setup takes; as in KumoMTA, an
    entry may also be an inline table holding the data itself."""
    if isinstance(files, str):
        files = [files]
    if isinstance(files, Mapping) and not files:
        files = []
    if not isinstance(files, list | tuple):
        raise ConfigError(f"{helper}: setup takes a list of file names, "
                          f"got {lua_type_name(files)}")
    for index, entry in enumerate(files, 1):
        if not isinstance(entry, str | dict):
            raise ConfigError(f"{helper}: setup takes a list of file names; entry {index} "
                              f"is a {lua_type_name(entry)}")
    return list(files)


def is_toml(path: str) -> bool:
    """KumoMTA's rule: a name ending in ``.toml`` is TOML, anything else JSON."""
    return path.lower().endswith(".toml")


def load_data_file(helper: str, path: str) -> dict[str, Any]:
    """The table in a TOML (``*.toml``) or JSON (any other name) file."""
    if not isinstance(path, str):
        raise ConfigError(f"{helper}: PATH must be a string, got {lua_type_name(path)}")
    try:
        raw = read_regular_file(path)  # a FIFO or a device would hold the loop
    except OSError as exc:
        raise DataFileError(helper, path, "", f"cannot read the file: {exc.strerror}") from exc
    return parse_data(helper, path, raw)


def parse_data(helper: str, path: str, raw: bytes) -> dict[str, Any]:
    """The table in ``raw``: TOML when ``path`` (a file name or URL) ends in ``.toml``,
    else JSON."""
    try:
        data = tomllib.loads(raw.decode("utf-8")) if is_toml(path) else json.loads(raw)
    except RecursionError as exc:  # a hostile file: [[[[...]]]] deeper than Python recurses
        raise DataFileError(helper, path, "", "nested too deeply to read") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "TOML" if is_toml(path) else "JSON (the name does not end in .toml)"
        raise DataFileError(helper, path, "", f"not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise DataFileError(helper, path, "", "expected a table at the top level")
    return data


def table(helper: str, file: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataFileError(helper, file, key, f"expected a table, got {_show(value)}")
    return value


def string_list(helper: str, file: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataFileError(helper, file, key, f"expected a list of strings, got {_show(value)}")
    return list(value)


def check_keys(
    helper: str, file: str, key: str, value: Mapping[str, Any], allowed: Iterable[str]
) -> None:
    allowed = sorted(allowed)
    for name in value:
        if name not in allowed:
            raise DataFileError(
                helper,
                file,
                key_path(key, name) if key else name,
                f"unknown key; expected one of {', '.join(allowed)}",
            )


def expect(
    helper: str, file: str, key: str, value: Any, kind: type | tuple[type, ...], what: str
) -> Any:
    """``value`` if it is a ``kind`` (a TOML boolean is not a number here)."""
    wrong_bool = isinstance(value, bool) and kind is not bool
    if wrong_bool or not isinstance(value, kind):
        raise DataFileError(helper, file, key, f"expected {what}, got {_show(value)}")
    return value


def build_options(
    helper: str, file: str, key: str, cls: type[OptionsT], options: Mapping[str, Any]
) -> OptionsT:
    """``cls.from_options(options)``, its error re-worded to name the file and section."""
    try:
        return cls.from_options(options, function=f"[{key}]" if key else cls.options_for)
    except ConfigError as exc:
        raise DataFileError(helper, file, key, f"{exc} (as {cls.options_for} takes it)") from exc


def check_options(
    helper: str,
    file: str,
    key: str,
    cls: type[Options],
    options: Mapping[str, Any],
    required: Mapping[str, Any],
) -> None:
    """Validate ``options`` as a (partial) table of ``cls``: ``required`` fills mandatory
    fields that the data file need not give (a source's ``name``)."""
    build_options(helper, file, key, cls, {**required, **options})


def exists(helper: str, file: str, key: str, path: str) -> str:
    if not os.path.isfile(path):
        raise DataFileError(helper, file, key, f"file {path!r} does not exist")
    return path


def load_all(
    helper: str, files: Sequence[str | dict[str, Any]], each: Callable[[str, dict[str, Any]], None]
) -> None:
    """Call ``each(file, data)`` for every file, in order (later files override earlier).
    An inline table is reported as ``<inline table N>`` (N counting from 1)."""
    for index, entry in enumerate(file_list(helper, files), 1):
        if isinstance(entry, dict):
            each(f"<inline table {index}>", entry)
        else:
            each(entry, load_data_file(helper, entry))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
