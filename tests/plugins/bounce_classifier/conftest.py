"""A fresh bounce classifier plugin per test, called through its hook implementations.

Only kumocore's hook caller talks to pluggy; these tests call the plugin's
``kumo_register_policy_functions`` and ``kumo_classify_bounce`` implementations directly,
as the hook caller would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kumocore_bounce_classifier import BounceClassifierPlugin

from kumocore.mail.response import Response

Configure = Callable[..., None]
Classify = Callable[[str], "str | None"]


@pytest.fixture
def plugin() -> BounceClassifierPlugin:
    return BounceClassifierPlugin()


@pytest.fixture
def configure(plugin: BounceClassifierPlugin) -> Configure:
    """``configure(files=[...], ...)``: call the contributed policy function, as a policy."""

    def call(**options: Any) -> None:
        plugin.kumo_register_policy_functions()["configure_bounce_classifier"](**options)

    return call


def response(line: str) -> Response:
    """The Response whose single-line form is ``line`` (``"550 5.1.1 user unknown"``)."""
    parsed = Response.parse(int(line[:3]), line[4:])
    assert parsed.to_single_line() == line
    return parsed


@pytest.fixture
def classify(plugin: BounceClassifierPlugin) -> Classify:
    """What kumocore asks for each failure: the ``kumo_classify_bounce`` hook."""

    def call(line: str) -> str | None:
        return plugin.kumo_classify_bounce(response=response(line))

    return call
