"""Parsing ``_dmarc`` TXT records: KumoMTA's defaults and value checks, unknown tags
ignored (RFC 7489 §6.3), and the size cap."""

from __future__ import annotations

import pytest

from kumocore.dmarc.record import MAX_RECORD_LENGTH, RecordError, parse_record


def test_a_minimal_record_takes_the_defaults() -> None:
    record = parse_record("v=DMARC1; p=none")
    assert (record.policy, record.subdomain_policy) == ("none", None)
    assert (record.align_dkim, record.align_spf, record.pct) == ("relaxed", "relaxed", 100)
    assert record.tags == {"p": "none"}


def test_every_known_tag_is_read_and_kept_for_the_result_props() -> None:
    record = parse_record(
        "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s; pct=25; fo=0:d; rf=afrf; "
        "ri=3600; rua=mailto:agg@example.com,mailto:x@example.net!10m; "
        "ruf=mailto:ruf@example.com;")
    assert (record.policy, record.subdomain_policy) == ("reject", "quarantine")
    assert (record.align_dkim, record.align_spf, record.pct) == ("strict", "strict", 25)
    assert record.tags["rua"] == "mailto:agg@example.com,mailto:x@example.net!10m"
    assert set(record.tags) == {"p", "sp", "adkim", "aspf", "pct", "fo", "rf", "ri", "rua",
                                "ruf"}


def test_whitespace_around_tags_and_values_is_allowed() -> None:
    record = parse_record("v = DMARC1 ;\tp = quarantine ; pct=\t50 ;")
    assert (record.policy, record.pct) == ("quarantine", 50)


def test_sp_applies_only_at_the_organizational_domain() -> None:
    record = parse_record("v=DMARC1; p=reject; sp=none")
    assert record.policy_for(organizational=False) == "reject"
    assert record.policy_for(organizational=True) == "none"
    assert parse_record("v=DMARC1; p=reject").policy_for(organizational=True) == "reject"


def test_unknown_tags_such_as_np_are_ignored() -> None:
    record = parse_record("v=DMARC1; p=reject; np=quarantine; psd=n; future=1")
    assert record.policy == "reject"
    assert record.tags == {"p": "reject"}


@pytest.mark.parametrize(("text", "error"), [
    ("p=reject; v=DMARC1", "invalid key 'p'"),
    ("v=DMARC2; p=reject", "invalid key 'v'"),
    ("v=DMARC1; rua=mailto:a@example.com", "missing policy"),
    ("v=DMARC1; p=Reject", "invalid value 'Reject' for p"),
    ("v=DMARC1; p=reject; sp=block", "invalid value 'block' for sp"),
    ("v=DMARC1; p=reject; adkim=x", "invalid value 'x' for adkim"),
    ("v=DMARC1; p=reject; aspf=relaxed", "invalid value 'relaxed' for aspf"),
    ("v=DMARC1; p=reject; pct=256", "invalid value '256' for pct"),
    ("v=DMARC1; p=reject; pct=-1", "invalid value '-1' for pct"),
    ("v=DMARC1; p=reject; fo=2", "invalid report failure"),
    ("v=DMARC1; p=reject; rf=iodef", "invalid format"),
    ("v=DMARC1; p=reject; ri=soon", "invalid value 'soon' for ri"),
    ("v=DMARC1; p=reject; rua=mailto:a@example.com!big", "invalid size"),
    ("v=DMARC1; p=reject; rua=mailto:a@example.com,", "empty feedback address"),
    ("v=DMARC1; p=reject; junk", "invalid part 'junk'"),
])
def test_bad_records_are_refused_with_the_offending_tag(text: str, error: str) -> None:
    with pytest.raises(RecordError, match=error):
        parse_record(text)


def test_a_record_over_the_size_cap_is_not_parsed() -> None:
    padding = "mailto:a@example.com," * (MAX_RECORD_LENGTH // 20)
    with pytest.raises(RecordError, match="longer than"):
        parse_record(f"v=DMARC1; p=reject; rua={padding}mailto:b@example.com")
