"""The one UTC time text of the views (trace events, queued messages, suspensions)."""

from __future__ import annotations

import ast
import inspect

import kumocore.logs.timestamps as timestamps
from kumocore.logs.timestamps import rfc3339


def test_a_time_with_a_fraction_has_microseconds_and_a_z() -> None:
    assert rfc3339(1_796_095_201.123456) == "2026-12-01T03:20:01.123456Z"
    assert rfc3339(1_796_095_201.000010) == "2026-12-01T03:20:01.000010Z"


def test_a_whole_millisecond_has_three_digits_as_chrono_writes_it() -> None:
    assert rfc3339(0.5) == "1970-01-01T00:00:00.500Z"
    assert rfc3339(1_796_095_201.25) == "2026-12-01T03:20:01.250Z"


def test_a_whole_second_has_no_fraction() -> None:
    assert rfc3339(1_796_095_201.0) == "2026-12-01T03:20:01Z"


def test_the_module_is_a_leaf_that_any_module_may_import() -> None:
    tree = ast.parse(inspect.getsource(timestamps))
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
    assert imported  # the walk sees the module's imports
    assert not [name for name in imported if name.startswith("kumocore")]
