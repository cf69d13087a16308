"""Tiny search spans for :mod:`kumocore.mail.sparse`, so that short hypothesis inputs reach
every boundary case of a span handed to ``re`` (an occurrence straddling one, an anchor
right after it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import kumocore.mail.sparse as sparse


@contextmanager
def tiny_spans(regex_span: int) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sparse, "ANCHORS_PER_SPAN", 2)
        patch.setattr(sparse, "REGEX_SPAN", regex_span)
        patch.setattr(sparse, "SMALL", 0)
        yield
