"""``kumo.string.psl_domain``/``psl_suffix``: the whole Public Suffix List (ICANN and
private sections), the implicit ``*`` rule for unknown TLDs, IDNs in either form, one
trailing dot and ASCII case ignored, as KumoMTA's psl crate answers."""

from __future__ import annotations

import pytest

from kumocore.dmarc.psl import psl_domain, psl_suffix
from kumocore.errors import ConfigError


@pytest.mark.parametrize(("name", "domain", "suffix"), [
    ("www.example.com", "example.com", "com"),
    ("example.com", "example.com", "com"),
    ("a.b.www.example.co.uk", "example.co.uk", "co.uk"),
    ("co.uk", None, "co.uk"),
    ("com", None, "com"),
])
def test_icann_suffixes_give_the_registrable_domain(
    name: str, domain: str | None, suffix: str,
) -> None:
    assert psl_domain(name) == domain
    assert psl_suffix(name) == suffix


def test_private_section_suffixes_count_like_icann_ones() -> None:
    assert psl_suffix("foo.blogspot.com") == "blogspot.com"
    assert psl_domain("www.foo.blogspot.com") == "foo.blogspot.com"
    assert psl_domain("blogspot.com") is None


def test_wildcard_and_exception_rules_apply() -> None:
    # *.ck with the exception !www.ck
    assert psl_suffix("foo.bar.ck") == "bar.ck"
    assert psl_domain("x.foo.bar.ck") == "foo.bar.ck"
    assert psl_domain("www.ck") == "www.ck"
    assert psl_suffix("www.ck") == "ck"


def test_an_unknown_tld_is_its_own_public_suffix() -> None:
    assert psl_suffix("mail.example.unknowntld") == "unknowntld"
    assert psl_domain("mail.example.unknowntld") == "example.unknowntld"
    assert psl_domain("unknowntld") is None
    assert psl_suffix("unknowntld") == "unknowntld"


def test_a_trailing_dot_and_ascii_case_are_normalized_away() -> None:
    assert psl_domain("WWW.Example.COM.") == "example.com"
    assert psl_suffix("Example.Co.UK.") == "co.uk"


def test_idns_match_in_unicode_and_in_punycode_and_answer_in_that_form() -> None:
    assert psl_domain("www.食狮.公司.cn") == "食狮.公司.cn"
    assert psl_suffix("www.食狮.公司.cn") == "公司.cn"
    assert psl_domain("www.xn--85x722f.xn--55qx5d.cn") == "xn--85x722f.xn--55qx5d.cn"
    assert psl_suffix("xn--85x722f.xn--55qx5d.cn") == "xn--55qx5d.cn"


@pytest.mark.parametrize("name", ["", ".", "example..com", ".com", "x" * 2000 + ".com"])
def test_names_with_empty_labels_or_absurd_length_have_neither(name: str) -> None:
    assert psl_domain(name) is None
    assert psl_suffix(name) is None


def test_a_non_string_argument_is_refused() -> None:
    with pytest.raises(ConfigError, match="psl_domain: expected a string"):
        psl_domain(42)
    with pytest.raises(ConfigError, match="psl_suffix: expected a string"):
        psl_suffix(None)
