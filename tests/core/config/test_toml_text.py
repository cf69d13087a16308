"""The TOML text kumocore writes for ``kumo.serde.toml_encode*``, ``kumo.format_*_toml`` and
kcli: the layout of the ``toml`` crate (0.9) KumoMTA uses, and strings any TOML reader
reads back."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

import kumocore
from kumocore.config.toml_text import (
    toml_basic_string,
    toml_encode,
    toml_encode_pretty,
    toml_encode_pretty_compact,
)

ENCODERS = [toml_encode, toml_encode_pretty, toml_encode_pretty_compact]


@pytest.mark.parametrize("encode", ENCODERS)
def test_a_table_holding_only_tables_gets_no_header_of_its_own(encode: Any) -> None:
    # The crate writes a table only when it has values, or nothing under it at all.
    table = {"name": "n", "limits": {"shared": {"limit": 2}, "other": {"limit": 3}}}
    text = encode(table)
    assert "[limits]" not in text
    assert "[limits.shared]\nlimit = 2\n" in text
    assert tomllib.loads(text) == table


def test_tables_follow_the_values_after_one_blank_line_and_nothing_leads_the_text() -> None:
    assert toml_encode({"t": {"x": 1}, "a": 1}) == "a = 1\n\n[t]\nx = 1\n"
    assert toml_encode({"t": {"x": 1}, "u": {"y": 2}}) == "[t]\nx = 1\n\n[u]\ny = 2\n"
    assert toml_encode({}) == ""


def test_an_empty_table_keeps_its_header_except_in_the_compact_form() -> None:
    table = {"b": 1, "e": {}, "n": {"gone": None}}
    assert toml_encode(table) == "b = 1\n\n[e]\n\n[n]\n"
    assert toml_encode_pretty_compact(table) == "b = 1\ne = {}\nn = {}\n"


def test_the_compact_form_sorts_keys_at_every_level_and_keeps_arrays_on_one_line() -> None:
    table = {"z": [1, 2], "a": {"y": 1, "b": {"k": {"d": 1, "c": 2}}}, "m": None}
    assert toml_encode_pretty_compact(table) == (
        "z = [1, 2]\n\n[a]\ny = 1\n\n[a.b.k]\nc = 2\nd = 1\n"
    )
    # The other forms keep the table's own order.
    assert toml_encode({"b": 1, "a": 2}) == "b = 1\na = 2\n"


def test_pretty_writes_an_array_of_two_or_more_items_one_item_a_line() -> None:
    assert toml_encode_pretty({"one": [1], "none": [], "two": [1, "x"]}) == (
        'one = [1]\nnone = []\ntwo = [\n    1,\n    "x",\n]\n'
    )
    assert toml_encode({"two": [1, "x"]}) == 'two = [1, "x"]\n'


@pytest.mark.parametrize("char", [chr(c) for c in [*range(0x20), 0x7F]])
def test_every_control_character_and_del_is_escaped(char: str) -> None:
    text = toml_encode({"s": f"a{char}b", f"k{char}": 1})
    lines = text.split("\n")
    assert len(lines) == 3 and not any(char in line for line in lines)  # two lines, escaped
    assert tomllib.loads(text) == {"s": f"a{char}b", f"k{char}": 1}


def test_escapes_are_tomls_short_ones_or_uppercase_unicode() -> None:
    assert toml_basic_string("\x7f") == '"\\u007F"'
    assert toml_basic_string("\x1b\x00") == '"\\u001B\\u0000"'
    assert toml_basic_string('\b\t\n\f\r"\\') == '"\\b\\t\\n\\f\\r\\"\\\\"'
    assert toml_basic_string("é ✓ /") == '"é ✓ /"'


def test_keys_that_are_not_bare_are_quoted() -> None:
    text = toml_encode({"ip-1": 1, "a.b": {"x y": 2}, 3: "n", "": 0})
    assert text == 'ip-1 = 1\n3 = "n"\n"" = 0\n\n["a.b"]\n"x y" = 2\n'
    assert tomllib.loads(text) == {"ip-1": 1, "3": "n", "": 0, "a.b": {"x y": 2}}


def test_a_value_toml_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot encode object as TOML"):
        toml_encode({"x": object()})


def test_plugins_get_the_renderer_from_kumocores_public_api() -> None:
    assert kumocore.toml_encode_pretty_compact is toml_encode_pretty_compact
    assert kumocore.toml_encode is toml_encode
    assert kumocore.toml_encode_pretty is toml_encode_pretty
