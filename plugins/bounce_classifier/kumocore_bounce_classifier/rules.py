"""Bounce rules files in KumoMTA's format: a ``[rules]`` table of ``Class = [regex, ...]``.

Files are TOML or (``.json`` suffix) JSON. Every mistake is a :class:`ConfigError` that
names the file and, where it can be found, the line: an operator editing a 200-line rules
file should not have to hunt for the one pattern Python's ``re`` refused.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from kumocore import PREDEFINED_BOUNCE_CLASSES, ConfigError
from kumocore.regular_file import read_regular_text

#: KumoMTA's predefined bounce classes (core's list); custom class names are allowed too.
PREDEFINED_CLASSES: tuple[str, ...] = PREDEFINED_BOUNCE_CLASSES

UNCATEGORIZED = "Uncategorized"

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of one class, with where it came from (for error messages)."""

    class_name: str
    pattern: str
    source: str
    line: int | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


def load_rules(path: str | os.PathLike[str]) -> list[Rule]:
    """The rules of one file, in file order (class key order, then list order).

    Every pattern is compiled here once, so a bad one fails at configure time.
    """
    name = os.fspath(path)
    try:
        text = read_regular_text(name)  # a FIFO or a device would hold the loop
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"bounce classifier rules file {name!r}: cannot read it: {exc}") from exc
    document = _parse(name, text)
    rules_table = _rules_table(name, text, document)
    rules: list[Rule] = []
    for class_name, patterns in rules_table.items():
        if not isinstance(class_name, str) or not _CLASS_NAME.fullmatch(class_name):
            raise ConfigError(f"{name}: invalid bounce class name {class_name!r}")
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            line = _class_line(text, class_name)
            raise ConfigError(
                f"{_at(name, line)}: rules.{class_name} must be a list of regex strings"
            )
        search_from = _class_line(text, class_name) or 1
        for index, pattern in enumerate(patterns):
            line = _pattern_line(text, pattern, search_from)
            if line is not None:
                search_from = line  # the next pattern of this class is at or below this one
            rule = Rule(class_name, pattern, name, line)
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"{rule.where}: invalid regex in rules.{class_name}[{index + 1}] "
                    f"{pattern!r}: {exc}"
                ) from None
            rules.append(rule)
    return rules


def load_rule_files(paths: list[str]) -> list[Rule]:
    """All files' rules merged in the order given: first file's rules first."""
    return [rule for path in paths for rule in load_rules(path)]


def _parse(name: str, text: str) -> Any:
    if name.lower().endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no line attribute; the message carries it.
        message = str(exc)
        position = _TOML_POSITION.search(message)
        if position:
            where = f"{name}:{position[1]}:{position[2]}"
        elif "(at end of document)" in message:  # e.g. an unclosed array: blame the end
            where = f"{name}:{max(1, len(text.splitlines()))}"
        else:
            where = name
        reason = _TOML_POSITION.sub("", message).replace("(at end of document)", "").strip()
        raise ConfigError(f"{where}: invalid TOML: {reason}") from None


def _rules_table(name: str, text: str, document: Any) -> dict[Any, Any]:
    if not isinstance(document, dict):
        raise ConfigError(f"{name}: a rules file must be a table with a 'rules' table in it")
    unknown = sorted(str(k) for k in document if k != "rules")
    if unknown:
        raise ConfigError(
            f"{name}: unknown top-level key(s) {unknown}; a rules file only has a 'rules' table"
        )
    table = document.get("rules")
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: missing the 'rules' table ([rules] in TOML)")
    return table


def _at(name: str, line: int | None) -> str:
    return f"{name}:{line}" if line else name


def _class_line(text: str, class_name: str) -> int | None:
    """The line where ``class_name`` is defined, as a TOML key or a JSON member."""
    key = re.escape(class_name)
    pattern = re.compile(
        rf"^\s*(?:rules\s*\.\s*)?(?:{key}|\"{key}\"|'{key}')\s*=|\"{key}\"\s*:", re.MULTILINE
    )
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _pattern_line(text: str, pattern: str, from_line: int) -> int | None:
    """The first line at or after ``from_line`` holding ``pattern`` as written in the file.

    A pattern appears verbatim in TOML literal strings, and JSON-escaped (backslashes and
    quotes doubled) in TOML basic strings and JSON strings.
    """
    spellings = {pattern, json.dumps(pattern, ensure_ascii=False)[1:-1]}
    lines = text.splitlines()
    for number in range(max(from_line, 1), len(lines) + 1):
        if any(spelling in lines[number - 1] for spelling in spellings):
            return number
    return None
