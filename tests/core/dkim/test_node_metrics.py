"""A real node whose Lua policy asks ``kumo.dkim.rsa_sha256_signer`` for a signer and
signs every message it receives exports KumoMTA's ``dkim_signer_*`` metrics on
``/metrics``: one signer built and found again, one key read, every signature timed.

The counts are per process (other tests sign too), so the test reads what moved between
two scrapes."""

from __future__ import annotations

from kumocore.testing.plugin import MakeNode
from tests.core.dkim.conftest import KeyFile
from tests.support.metric_samples import Samples, samples

POLICY = """
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
  msg:dkim_sign(kumo.dkim.rsa_sha256_signer {
    domain = 'example.org', selector = 's1', headers = { 'From', 'To', 'Subject' },
    key = '%KEY%',
  })
end)
"""
MESSAGES = 3
HISTOGRAMS = ("creation", "key_fetch", "message_parse", "sign")


def _moved(before: Samples, after: Samples) -> dict[str, float]:
    """How far each unlabelled ``dkim_signer_*`` sample moved, by the rest of its name."""
    return {name.removeprefix("dkim_signer_"): value - before.get((name, labels), 0)
            for (name, labels), value in after.items()
            if name.startswith("dkim_signer_") and not labels}  # fmt: skip


async def test_signing_n_messages_builds_one_signer_and_times_n_signatures(
    make_node: MakeNode, keys: dict[str, KeyFile]
) -> None:
    node = await make_node(POLICY.replace("%KEY%", str(keys["rsa2048-pkcs8"].path)))
    before = samples((await node.admin("GET", "/metrics"))[1])
    for _ in range(MESSAGES):
        assert await node.send() == {}
    after = samples((await node.admin("GET", "/metrics"))[1])
    moved = _moved(before, after)

    assert moved["cache_lookup_count"] == MESSAGES
    assert moved["cache_lookup_count"] == moved["cache_hit"] + moved["cache_miss"]
    assert moved["cache_miss"] == 1
    assert moved["creation_count"] == 1
    assert (moved["message_parse_count"], moved["sign_count"]) == (MESSAGES, MESSAGES)
    # the key is read once, for the signer, then found again at each signature
    assert (moved["key_cache_lookup_count"], moved["key_cache_miss"]) == (MESSAGES + 1, 1)
    assert moved["key_fetch_count"] == 1
    for name in HISTOGRAMS:
        inf = after[(f"dkim_signer_{name}_bucket", (("le", "+Inf"),))]
        assert inf == after[(f"dkim_signer_{name}_count", ())], name
