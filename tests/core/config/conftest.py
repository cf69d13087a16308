"""Config tests: a fixture for parsing options kumocore refuses by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kumocore.config.unsupported import ALLOW_UNSUPPORTED_ENV


@pytest.fixture
def allow_unsupported(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As ``--allow-unsupported``: unsupported options load (ignored) instead of failing."""
    monkeypatch.setenv(ALLOW_UNSUPPORTED_ENV, "1")
    yield
