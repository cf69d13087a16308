"""TLSA matching rules on real certificates (trustme): which records are usable, what
DANE-EE ignores (names, dates) and what DANE-TA checks (chain, dates, the MX name)."""

from __future__ import annotations

import datetime

import pytest
import trustme

from kumocore.delivery.dane import Tlsa
from kumocore.delivery.dane_match import DaneMismatch, check_chain
from tests.support.dane import association, ca_cert, cert_of, leaf_cert

HOST = "mx.dane.example"


def _der(leaf: trustme.LeafCert, *cas: trustme.CA) -> list[bytes]:
    from cryptography.hazmat.primitives.serialization import Encoding

    certs = [cert_of(p.bytes()) for p in leaf.cert_chain_pems] + [ca_cert(c) for c in cas]
    return [c.public_bytes(Encoding.DER) for c in certs]


def _record(usage: int, selector: int, mtype: int, hexdata: str) -> Tlsa:
    return Tlsa(usage, selector, mtype, bytes.fromhex(hexdata))


@pytest.mark.parametrize(
    ("usage", "selector", "mtype", "length", "usable"),
    [
        (3, 1, 1, 32, True), (2, 1, 1, 32, True), (3, 0, 2, 64, True), (2, 0, 0, 100, True),
        (0, 1, 1, 32, False), (1, 1, 1, 32, False), (4, 1, 1, 32, False),  # PKIX, unassigned
        (3, 2, 1, 32, False), (3, 1, 3, 32, False),  # unknown selector / matching type
        (3, 1, 1, 31, False), (3, 1, 2, 32, False),  # digest of the wrong length
    ],
)
def test_only_dane_ta_and_ee_records_with_known_parameters_are_usable(
    usage: int, selector: int, mtype: int, length: int, usable: bool,
) -> None:
    assert Tlsa(usage, selector, mtype, b"\x01" * length).usable is usable


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("mtype", [0, 1, 2])
def test_dane_ee_matches_every_selector_and_matching_type(selector: int, mtype: int) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert(HOST)
    record = _record(3, selector, mtype, association(leaf_cert(leaf), selector, mtype))
    cert, matched = check_chain([record], _der(leaf), HOST)
    assert matched == record and cert == leaf_cert(leaf)


def test_dane_ee_ignores_the_name_and_the_expiry_of_the_certificate() -> None:
    long_ago = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    leaf = trustme.CA().issue_cert("somebody-else.example", not_before=long_ago,
                                   not_after=long_ago + datetime.timedelta(days=1))
    record = _record(3, 1, 1, association(leaf_cert(leaf), 1, 1))
    check_chain([record], _der(leaf), HOST)


def test_dane_ee_record_of_another_key_does_not_match() -> None:
    leaf, other = trustme.CA().issue_cert(HOST), trustme.CA().issue_cert(HOST)
    record = _record(3, 1, 1, association(leaf_cert(other), 1, 1))
    with pytest.raises(DaneMismatch, match="matches no DANE-EE record"):
        check_chain([record], _der(leaf), HOST)


def test_dane_ta_accepts_an_intermediate_as_trust_anchor() -> None:
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert(HOST)
    record = _record(2, 0, 1, association(ca_cert(intermediate), 0, 1))
    cert, _ = check_chain([record], _der(leaf), HOST)  # trustme sends leaf + intermediate
    assert cert == ca_cert(intermediate)


def test_dane_ta_accepts_a_wildcard_name_for_one_label() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("*.dane.example")
    record = _record(2, 1, 1, association(ca_cert(ca), 1, 1))
    check_chain([record], _der(leaf, ca), HOST)
    with pytest.raises(DaneMismatch, match=r"does not name deep\.mx\.dane\.example"):
        check_chain([record], _der(leaf, ca), "deep." + HOST)


def test_dane_ta_refuses_a_certificate_for_another_name() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("other.example")
    record = _record(2, 1, 1, association(ca_cert(ca), 1, 1))
    with pytest.raises(DaneMismatch, match=r"does not name mx\.dane\.example"):
        check_chain([record], _der(leaf, ca), HOST)


def test_dane_ta_refuses_an_expired_server_certificate() -> None:
    ca = trustme.CA()
    long_ago = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    leaf = ca.issue_cert(HOST, not_before=long_ago,
                         not_after=long_ago + datetime.timedelta(days=1))
    record = _record(2, 1, 1, association(ca_cert(ca), 1, 1))
    with pytest.raises(DaneMismatch, match="is not valid now"):
        check_chain([record], _der(leaf, ca), HOST)


def test_dane_ta_refuses_a_chain_whose_anchor_did_not_sign_the_certificate() -> None:
    # The anchor is sent, but the leaf was issued by another CA with the very same name:
    # only the signature tells them apart.
    ca, impostor = (trustme.CA(organization_name="Same", organization_unit_name="CA")
                    for _ in range(2))
    assert ca_cert(ca).subject == ca_cert(impostor).subject
    leaf = impostor.issue_cert(HOST)
    record = _record(2, 1, 1, association(ca_cert(ca), 1, 1))
    with pytest.raises(DaneMismatch, match="no DANE-TA record matches"):
        check_chain([record], _der(leaf, ca), HOST)


def test_an_empty_or_garbage_chain_is_a_mismatch() -> None:
    record = _record(3, 1, 1, "ab" * 32)
    with pytest.raises(DaneMismatch, match="sent no certificate"):
        check_chain([record], [], HOST)
    with pytest.raises(DaneMismatch, match="cannot be parsed"):
        check_chain([record], [b"not a certificate"], HOST)
