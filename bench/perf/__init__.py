"""Side-by-side benchmarks: kumocore and Postfix on the same load, on the same machine.

``python -m bench.perf.run --mode short|full`` (``make bench-short`` / ``make bench``). The
modules:

* :mod:`bench.perf.load` — the load: test messages, Postfix's ``smtp-source`` and a counting
  sink (``kc-sink``, bench/perf/sink.c, or Postfix's ``smtp-sink``), HTTP injection;
* :mod:`bench.perf.postfix` — a private Postfix instance (own config, queue and data
  directories under a temp dir; the system's ``/etc/postfix`` is never touched);
* :mod:`bench.perf.kumocore_side` — ``kumocore serve`` with ``bench/policy/bench_policy.py``;
* :mod:`bench.perf.recovery` and :mod:`bench.perf.memory` — many spooled messages: time to recover
  them after a restart, and the resident memory each scheduled message costs.

Profiling (py-spy, when installed) is in :mod:`bench.perf.kumocore_side`.

Results are documented in ``docs/performance.md``.
"""

from __future__ import annotations
