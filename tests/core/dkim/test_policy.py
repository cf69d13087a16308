"""``kumo.dkim.rsa_sha256_signer`` / ``ed25519_signer``: KumoMTA's options, errors naming the
key, and the signer cache that keeps a signer-per-message policy cheap."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kumocore import ConfigError, takes_table
from kumocore.dkim import Signer, make_dkim_functions
from kumocore.dkim import keys as dkim_keys
from kumocore.dkim.policy import SignerCache
from tests.core.dkim.conftest import MESSAGE, KeyFile, Verify


def options(key_file: KeyFile, **extra: Any) -> dict[str, Any]:
    return {
        "domain": "example.com",
        "selector": "sel",
        "headers": ["From", "To", "Subject"],
        "key": str(key_file.path),
        **extra,
    }


def test_functions_are_table_style_under_the_dkim_namespace() -> None:
    functions = make_dkim_functions()
    assert set(functions) == {"dkim.rsa_sha256_signer", "dkim.ed25519_signer"}
    assert all(takes_table(fn) for fn in functions.values())


def test_rsa_signer_from_options_signs_verifiably(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    signer = fn(
        **options(
            keys["rsa2048-pkcs1"],
            header_canonicalization="Simple",
            body_canonicalization="Simple",
            expiration=600,
            ttl="5 minutes",
        )
    )
    assert isinstance(signer, Signer)
    assert (signer.algorithm, signer.header_canonicalization, signer.ttl) == (
        "rsa-sha256",
        "Simple",
        300.0,
    )
    assert dkimpy_verify(signer.sign(MESSAGE) + MESSAGE, keys["rsa2048-pkcs1"].record)


def test_ed25519_signer_accepts_inline_key_data(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    fn = make_dkim_functions()["dkim.ed25519_signer"]
    signer = fn(**options(keys["ed25519"], key={"key_data": keys["ed25519"].pem.decode()}))
    assert signer.algorithm == "ed25519-sha256" and signer.key_path is None
    assert dkimpy_verify(signer.sign(MESSAGE) + MESSAGE, keys["ed25519"].record)


def test_unknown_option_raises_config_error_naming_it_and_listing_allowed(
    keys: dict[str, KeyFile],
) -> None:
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    with pytest.raises(ConfigError, match=r"'file_name'.*allowed:.*agent_user_identifier"):
        fn(**options(keys["rsa2048-pkcs1"], file_name="x.pem"))


@pytest.mark.parametrize("required", ["domain", "selector", "headers", "key"])
def test_missing_required_option_raises_config_error_naming_it(
    keys: dict[str, KeyFile], required: str
) -> None:
    opts = options(keys["rsa2048-pkcs1"])
    del opts[required]
    with pytest.raises(ConfigError, match=f"missing required key '{required}'"):
        make_dkim_functions()["dkim.rsa_sha256_signer"](**opts)


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        ({"header_canonicalization": "relaxed"}, "header_canonicalization"),
        ({"over_sign": "yes"}, "over_sign"),
        ({"ttl": "soon"}, "ttl"),
        ({"key": {"vault_path": "secret/dkim"}}, "'key' in .*needs vault_mount"),
        ({"headers": "From"}, "headers"),
    ],
)
def test_bad_option_values_raise_config_error_naming_the_key(
    keys: dict[str, KeyFile], extra: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        make_dkim_functions()["dkim.rsa_sha256_signer"](**options(keys["rsa2048-pkcs1"], **extra))


def test_missing_key_file_fails_when_the_signer_is_built(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    with pytest.raises(ConfigError, match=str(missing)):
        fn(domain="example.com", selector="s", headers=["From"], key=str(missing))


def test_key_of_the_wrong_type_is_refused(keys: dict[str, KeyFile]) -> None:
    with pytest.raises(ConfigError, match="ed25519-sha256 key cannot make rsa-sha256"):
        make_dkim_functions()["dkim.rsa_sha256_signer"](**options(keys["ed25519"]))


def test_same_options_reuse_the_cached_signer_without_reloading_the_key(
    keys: dict[str, KeyFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[str] = []
    real_parse = dkim_keys.parse_private_key

    def counting(data: bytes, *, origin: str) -> dkim_keys.PrivateKey:
        parses.append(origin)
        return real_parse(data, origin=origin)

    monkeypatch.setattr(dkim_keys, "parse_private_key", counting)
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    first = fn(**options(keys["rsa2048-pkcs8"]))
    for _ in range(50):  # as a policy building a signer per message would
        assert fn(**options(keys["rsa2048-pkcs8"])) is first
        first.sign(MESSAGE)
    assert len(parses) == 1
    other = fn(**options(keys["rsa2048-pkcs8"], selector="other"))
    assert other is not first and other.selector == "other"


def test_signer_cache_key_ignores_option_order_and_keeps_types_apart(
    keys: dict[str, KeyFile],
) -> None:
    from kumocore.dkim.policy import _freeze

    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    forward = options(keys["rsa2048-pkcs8"])
    backward = dict(reversed(list(forward.items())))
    assert fn(**backward) is fn(**forward)
    assert _freeze({"ttl": 1}) != _freeze({"ttl": True}) != _freeze({"ttl": "1"})
    # A Lua table may hold 1 and "1" as keys: equal once made text, their values (a list
    # and a table here) are never compared with each other.
    assert hash(_freeze({1: [1], "1": {"a": None}}))


def test_cached_signer_expires_after_its_ttl(
    keys: dict[str, KeyFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    first = fn(**options(keys["rsa2048-pkcs8"], ttl=10))
    now[0] += 9
    assert fn(**options(keys["rsa2048-pkcs8"], ttl=10)) is first
    now[0] += 2
    assert fn(**options(keys["rsa2048-pkcs8"], ttl=10)) is not first


def test_signer_cache_is_bounded_and_per_function_set(keys: dict[str, KeyFile]) -> None:
    cache = SignerCache(capacity=3)
    fn = make_dkim_functions(cache)["dkim.rsa_sha256_signer"]
    for i in range(5):
        fn(**options(keys["rsa2048-pkcs8"], selector=f"s{i}"))
    assert len(cache) == 3
    separate = make_dkim_functions()["dkim.rsa_sha256_signer"]
    assert separate(**options(keys["rsa2048-pkcs8"])) is not fn(**options(keys["rsa2048-pkcs8"]))


def test_signer_from_the_policy_function_signs_a_kumocore_message(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    from kumocore.mail.message import Message

    message = Message("alice@example.com", "bob@example.net", MESSAGE)
    signer = make_dkim_functions()["dkim.ed25519_signer"](**options(keys["ed25519"]))
    message.dkim_sign(signer)
    assert message.data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert dkimpy_verify(message.data, keys["ed25519"].record)
