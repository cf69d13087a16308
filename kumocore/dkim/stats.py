"""KumoMTA's DKIM signer metrics, for ``/metrics``: six counters for the signer and key
caches and four latency histograms (``dkim_signer_creation``, ``dkim_signer_key_fetch``,
``dkim_signer_message_parse``, ``dkim_signer_sign``).

Where KumoMTA's two caches are in kumocore, and what moves the counters:

* ``dkim_signer_cache`` is the cache of built signers by their options: the
  :class:`~kumocore.dkim.policy.SignerCache` behind ``kumo.dkim.rsa_sha256_signer`` and
  ``ed25519_signer``, and the signers ``policy-extras.dkim_sign`` keeps by algorithm,
  domain and key file. Each request for a signer is a lookup; a hit when a built signer
  answers it (also when it waited for another caller's HashiCorp Vault read, as
  KumoMTA's waiters do), a miss once a new signer was built. A build that fails is a
  lookup and neither, so ``lookup_count`` is ``hit + miss`` plus the failures.
* ``dkim_key_cache`` is :mod:`kumocore.dkim.keys`' cache of parsed private keys (a key
  file's by its path and stamp, inline ``key_data`` by its bytes), counted the same way;
  a miss reads and parses the key. kumocore asks it for the key at every signature (and
  ARC seal), not only when it builds a signer (a rotated key file is picked up within a
  second, whatever the signer's ``ttl``), so its lookups follow the rate of signatures,
  where KumoMTA's follow the rate of signer builds. A key in HashiCorp Vault is read
  again each time its signer is built (what was read is kept with the signer, not by its
  source): each read is a lookup and a miss, then its bytes are one more lookup of the
  parsed-key cache.

The histograms, in seconds, each also taking the attempts that fail (KumoMTA's timers
record when dropped):

* ``creation``: building a signer on a miss, its key included (a Vault read too);
* ``key_fetch``: reading a key from its storage and parsing it, on a miss (for a key in
  Vault, the read and then the parse of what it read are two fetches);
* ``message_parse`` and ``sign``: one signature in two steps, split where KumoMTA splits
  it. Parsing is what ``ParsedEmail::parse`` does there: finding the header fields and
  where the body starts (:func:`~kumocore.dkim.canonicalization.split_message` and
  :func:`~kumocore.dkim.canonicalization.parse_fields`). Signing is the rest: the
  canonical body and its hash, the fields ``h=`` names and their canonical forms, the
  RSA or ed25519 signature and the folded header field. Getting the key comes first and
  is in neither.

The counts are per process, in the module-level :data:`STATS`, as KumoMTA's are: the key
cache is itself per process, a ``SignerCache`` is one per policy runtime (one per
process when serving), and signers built outside any ``SignerCache`` (by
``policy-extras.dkim_sign``, or by a Python policy calling
:func:`~kumocore.dkim.policy.make_signer`) sign too. Workers' scrapes are summed
(:mod:`kumocore.admin.merge`). Tests that start several nodes in one process see the sum
of those nodes.

There is no lock: kumocore signs on the event loop's thread (Lua runs there, a Python
policy's handlers are coroutines on it, and kumocore has no signing threads:
``kumo.dkim.set_signing_threads`` is not implemented). A policy that signed from threads
of its own could lose an increment to a race; these are monitoring counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter

from prometheus_client.metrics_core import Metric

from kumocore.node.latency import Histogram, histogram_family

__all__ = ["STATS", "DkimStats", "Timing", "dkim_metrics"]


class DkimStats:
    """The counts and latencies of one process's DKIM signing (attributes the signer and
    key caches increment and observe directly, as :class:`kumocore.dns.mx_stats.MxStats`).
    """

    __slots__ = (
        "cache_hit",
        "cache_lookup_count",
        "cache_miss",
        "creation",
        "key_cache_hit",
        "key_cache_lookup_count",
        "key_cache_miss",
        "key_fetch",
        "message_parse",
        "sign",
    )

    def __init__(self) -> None:
        self.cache_lookup_count = 0  # requests for a signer
        self.cache_hit = 0  # answered by a built signer
        self.cache_miss = 0  # a new signer was built
        self.key_cache_lookup_count = 0  # requests for a private key
        self.key_cache_hit = 0  # answered by a parsed key
        self.key_cache_miss = 0  # the key was read and parsed
        self.creation = Histogram()
        self.key_fetch = Histogram()
        self.message_parse = Histogram()
        self.sign = Histogram()


#: This process's DKIM statistics (see the module's docstring for why one per process).
STATS = DkimStats()


class Timing:
    """``with Timing(histogram): ...`` observes the block's duration, also when it
    raises. For the rare steps (a signer built, a key read); the per-message steps time
    themselves inline, which is cheaper than an object per message."""

    __slots__ = ("_histogram", "_start")

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self._histogram.observe(perf_counter() - self._start)


_COUNTERS = (
    ("dkim_signer_cache_hit", "requests for a DKIM signer answered by a signer built earlier"),
    ("dkim_signer_cache_miss", "requests for a DKIM signer that built a new signer"),
    ("dkim_signer_cache_lookup_count",
     "requests for a DKIM signer (hits, misses, and builds that failed)"),
    ("dkim_signer_key_cache_hit",
     "requests for a DKIM private key answered by a key parsed earlier"),
    ("dkim_signer_key_cache_miss",
     "requests for a DKIM private key that read and parsed the key"),
    ("dkim_signer_key_cache_lookup_count",
     "requests for a DKIM private key (hits, misses, and loads that failed)"),
)  # fmt: skip
_HISTOGRAMS = (
    ("dkim_signer_creation",
     "seconds taken to build a DKIM signer on a signer cache miss, its key included"),
    ("dkim_signer_key_fetch",
     "seconds taken to read a DKIM private key from its storage and parse it"),
    ("dkim_signer_message_parse",
     "seconds taken to find a message's header fields and body before signing it"),
    ("dkim_signer_sign",
     "seconds taken to sign a parsed message: body and header hashes and the signature"),
)  # fmt: skip


def dkim_metrics(stats: DkimStats = STATS) -> Iterator[Metric]:
    """The six counters, then the four histograms, unlabelled, as KumoMTA exports them."""
    counts = (stats.cache_hit, stats.cache_miss, stats.cache_lookup_count,
              stats.key_cache_hit, stats.key_cache_miss, stats.key_cache_lookup_count)  # fmt: skip
    for (name, text), value in zip(_COUNTERS, counts, strict=True):
        metric = Metric(name, text, "counter")
        metric.add_sample(name, {}, value)
        yield metric
    latencies = (stats.creation, stats.key_fetch, stats.message_parse, stats.sign)
    for (name, text), histogram in zip(_HISTOGRAMS, latencies, strict=True):
        yield histogram_family(name, text, histogram)
