"""policy-extras.dkim_sign counts its signers as KumoMTA's helper does, whose every
message asks ``kumo.dkim.*_signer``: a signer cache lookup per signature, built once."""

from __future__ import annotations

from pathlib import Path

from kumocore_lua_policy.extras.dkim_data import DkimData

from kumocore.dkim.stats import STATS
from kumocore.mail.message import Message
from tests.plugins.lua_policy.helpers.support import make_key


def _counts() -> tuple[int, int, int, int, int]:
    return (STATS.cache_lookup_count, STATS.cache_hit, STATS.cache_miss,
            STATS.creation.count, STATS.sign.count)  # fmt: skip


def test_dkim_data_builds_its_signer_once_and_finds_it_for_each_message(tmp_path: Path) -> None:
    make_key(tmp_path / "a.test" / "s1.key")
    before = _counts()
    data = DkimData([{
        "base": {"selector": "s1", "headers": ["From", "To"],
                 "filename": f"{tmp_path}/{{domain}}/{{selector}}.key"},
        "domain": {"a.test": {}},
    }])  # fmt: skip
    for _ in range(3):
        message = Message("x@a.test", "b@dest.test", b"From: <x@a.test>\r\nTo: <b@dest.test>"
                          b"\r\n\r\nHello.\r\n")  # fmt: skip
        assert data.sign(message) is None
    moved = tuple(now - then for now, then in zip(_counts(), before, strict=True))
    assert moved == (4, 3, 1, 1, 3)  # lookups, hits, misses, builds, signatures
