"""A fresh plugin manager per test with only the bounce classifier registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy
import pytest
from kumocore_bounce_classifier import BounceClassifierPlugin

import kumocore.hookspecs
from kumocore.response import Response

Configure = Callable[..., None]
Classify = Callable[[str], "str | None"]


@pytest.fixture
def pm() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("kumocore")
    manager.add_hookspecs(kumocore.hookspecs)
    manager.register(BounceClassifierPlugin())
    return manager


@pytest.fixture
def configure(pm: pluggy.PluginManager) -> Configure:
    """``configure(files=[...], ...)``: call the contributed policy function, as a policy."""

    def call(**options: Any) -> None:
        functions: dict[str, Any] = {}
        for contributed in pm.hook.kumo_register_policy_functions():
            functions.update(contributed)
        functions["configure_bounce_classifier"](**options)

    return call


def response(line: str) -> Response:
    """The Response whose single-line form is ``line`` (``"550 5.1.1 user unknown"``)."""
    parsed = Response.parse(int(line[:3]), line[4:])
    assert parsed.to_single_line() == line
    return parsed


@pytest.fixture
def classify(pm: pluggy.PluginManager) -> Classify:
    """What kumocore asks for each failure: the ``kumo_classify_bounce`` hook."""

    def call(line: str) -> str | None:
        result: str | None = pm.hook.kumo_classify_bounce(response=response(line))
        return result

    return call
