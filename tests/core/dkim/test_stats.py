"""KumoMTA's ``dkim_signer_*`` counts and latencies, kept by the signer cache, the key
cache and the signer around each signature (:mod:`kumocore.dkim.stats`).

The counts are per process, so each test compares what moved while it ran."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.dkim import keys as dkim_keys
from kumocore.dkim.policy import SignerCache
from kumocore.dkim.stats import STATS, DkimStats, Timing, dkim_metrics
from kumocore.node.latency import Histogram
from tests.core.dkim.conftest import MESSAGE, KeyFile
from tests.support.vault_server import vault_server

_COUNTERS = ("cache_lookup_count", "cache_hit", "cache_miss",
             "key_cache_lookup_count", "key_cache_hit", "key_cache_miss")  # fmt: skip
_HISTOGRAMS = ("creation", "key_fetch", "message_parse", "sign")


def snapshot() -> dict[str, int]:
    """Every counter of :data:`STATS`, and each histogram's count."""
    counts = {name: getattr(STATS, name) for name in _COUNTERS}
    counts.update({name: getattr(STATS, name).count for name in _HISTOGRAMS})
    return counts


def moved(before: dict[str, int]) -> dict[str, int]:
    """What moved since ``before``, and by how much."""
    return {name: value - before[name] for name, value in snapshot().items()
            if value != before[name]}  # fmt: skip


def options(key: str | dict[str, Any]) -> dict[str, Any]:
    return {"domain": "example.com", "selector": "sel",
            "headers": ["From", "To", "Subject"], "key": key}  # fmt: skip


def test_a_signer_asked_for_three_times_is_built_once_and_found_twice(
    keys: dict[str, KeyFile],
) -> None:
    cache = SignerCache()
    before = snapshot()
    for _ in range(3):
        cache.get("rsa-sha256", options(str(keys["rsa1024-pkcs1"].path)))
    assert moved(before) == {
        "cache_lookup_count": 3, "cache_hit": 2, "cache_miss": 1, "creation": 1,
        "key_cache_lookup_count": 1, "key_cache_miss": 1, "key_fetch": 1,
    }  # fmt: skip


def test_a_signer_that_cannot_be_built_is_a_timed_lookup_but_no_miss(tmp_path: Path) -> None:
    before = snapshot()
    with pytest.raises(ConfigError):
        SignerCache().get("rsa-sha256", options(str(tmp_path / "missing.pem")))
    assert moved(before) == {"cache_lookup_count": 1, "creation": 1,
                             "key_cache_lookup_count": 1}  # fmt: skip


def test_each_signature_is_a_key_lookup_a_parse_and_a_sign(keys: dict[str, KeyFile]) -> None:
    signer = SignerCache().get("rsa-sha256", options(str(keys["rsa1024-pkcs1"].path)))
    before = snapshot()
    for _ in range(3):
        signer.sign(MESSAGE)
    assert moved(before) == {"key_cache_lookup_count": 3, "key_cache_hit": 3,
                             "message_parse": 3, "sign": 3}  # fmt: skip


def test_a_signature_that_fails_is_still_timed(keys: dict[str, KeyFile]) -> None:
    signer = SignerCache().get("rsa-sha256", options(str(keys["rsa1024-pkcs1"].path)))
    before = snapshot()
    with pytest.raises(ValueError, match="none of the header fields"):
        signer.sign(b"X-Other: no field to sign\r\n\r\nbody\r\n")
    assert moved(before) == {"key_cache_lookup_count": 1, "key_cache_hit": 1,
                             "message_parse": 1, "sign": 1}  # fmt: skip


def test_a_rewritten_key_file_is_read_again_as_a_miss(
    keys: dict[str, KeyFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dkim_keys, "RECHECK_SECONDS", 0.0)  # look at the file every time
    path = tmp_path / "rotating.pem"
    path.write_bytes(keys["rsa1024-pkcs1"].pem)
    before = snapshot()
    dkim_keys.load_private_key(path)  # read
    dkim_keys.load_private_key(path)  # unchanged: a hit
    path.write_bytes(keys["rsa2048-pkcs1"].pem)
    dkim_keys.load_private_key(path)  # rotated: read again
    assert moved(before) == {"key_cache_lookup_count": 3, "key_cache_hit": 1,
                             "key_cache_miss": 2, "key_fetch": 2}  # fmt: skip


def test_a_malformed_key_file_is_a_timed_fetch_but_no_miss(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    before = snapshot()
    with pytest.raises(ConfigError):
        dkim_keys.load_private_key(path)
    assert moved(before) == {"key_cache_lookup_count": 1, "key_fetch": 1}


def test_inline_key_data_is_parsed_once_then_found(keys: dict[str, KeyFile]) -> None:
    before = snapshot()
    dkim_keys.load_private_key_data(keys["ed25519"].pem)
    dkim_keys.load_private_key_data(keys["ed25519"].pem)
    assert moved(before) == {"key_cache_lookup_count": 2, "key_cache_hit": 1,
                             "key_cache_miss": 1, "key_fetch": 1}  # fmt: skip


async def test_callers_waiting_on_one_vault_read_hit_and_the_reader_misses(
    keys: dict[str, KeyFile],
) -> None:
    cache = SignerCache()
    async with vault_server() as server:
        server.put("k", key=keys["rsa1024-pkcs1"].pem.decode())
        before = snapshot()
        await asyncio.gather(*(cache.get_vault("rsa-sha256", options(server.source("k")))
                               for _ in range(5)))  # fmt: skip
        await cache.get_vault("rsa-sha256", options(server.source("k")))
    # One build: the Vault read (a key fetch) and the parse of what it read (another).
    assert moved(before) == {
        "cache_lookup_count": 6, "cache_hit": 5, "cache_miss": 1, "creation": 1,
        "key_cache_lookup_count": 2, "key_cache_miss": 2, "key_fetch": 2,
    }  # fmt: skip


def test_timing_observes_a_block_that_raises() -> None:
    histogram = Histogram()
    with pytest.raises(RuntimeError), Timing(histogram):
        raise RuntimeError("failed build")
    assert histogram.count == 1 and 0 <= histogram.sum < 1


def test_the_ten_families_carry_kumomtas_names_and_cumulative_buckets() -> None:
    stats = DkimStats()
    stats.cache_lookup_count, stats.cache_hit, stats.cache_miss = 5, 4, 1
    stats.key_cache_lookup_count, stats.key_cache_hit, stats.key_cache_miss = 6, 5, 1
    for seconds in (0.0002, 0.003, 0.02, 12.0):
        stats.sign.observe(seconds)
    families = {metric.name: metric for metric in dkim_metrics(stats)}
    assert {name: m.type for name, m in families.items()} == {
        "dkim_signer_cache_hit": "counter", "dkim_signer_cache_miss": "counter",
        "dkim_signer_cache_lookup_count": "counter", "dkim_signer_key_cache_hit": "counter",
        "dkim_signer_key_cache_miss": "counter", "dkim_signer_key_cache_lookup_count": "counter",
        "dkim_signer_creation": "histogram", "dkim_signer_key_fetch": "histogram",
        "dkim_signer_message_parse": "histogram", "dkim_signer_sign": "histogram",
    }  # fmt: skip
    values = {(s.name, s.labels.get("le")): s.value
              for m in families.values() for s in m.samples}  # fmt: skip
    assert values[("dkim_signer_cache_lookup_count", None)] == 5
    assert values[("dkim_signer_key_cache_hit", None)] == 5
    assert values[("dkim_signer_sign_bucket", "0.005")] == 2
    assert values[("dkim_signer_sign_bucket", "10")] == 3
    assert values[("dkim_signer_sign_bucket", "+Inf")] == values[("dkim_signer_sign_count", None)]
    assert values[("dkim_signer_sign_count", None)] == 4
    assert values[("dkim_signer_creation_count", None)] == 0
