"""``kumo.encode.charset_encode(CHARSET, INPUT, OPT_IGNORE_ERRORS)`` as KumoMTA documents
it: errors are ignored unless the third argument is false (a character the charset lacks
becomes a numeric character reference); ``false`` makes them a policy error."""

from __future__ import annotations

import pytest
from kumocore_lua_policy.stdlib.codec import charset_encode

from kumocore import ConfigError


def test_errors_are_ignored_by_default_and_when_asked() -> None:
    assert charset_encode("latin-1", "caf\u00e9 \u20ac") == b"caf\xe9 &#8364;"
    assert charset_encode("latin-1", "\u20ac", True) == b"&#8364;"


def test_false_makes_an_unencodable_character_an_error() -> None:
    assert charset_encode("latin-1", "caf\u00e9", False) == b"caf\xe9"
    with pytest.raises(ConfigError, match="cannot encode as latin-1"):
        charset_encode("latin-1", "\u20ac", False)
