"""kumocore's benchmarks and reliability suite (run from the repository root).

* :mod:`bench.perf` — the side-by-side benchmark against Postfix, Postfix + OpenDKIM and
  Haraka (``python -m bench.perf.run``, ``make bench`` / ``make bench-short``);
* :mod:`bench.reliability` — the hostile and crash suite (``python -m bench.reliability``,
  ``make reliability`` / ``make reliability-short``);
* :mod:`bench.micro` — micro-benchmarks of one part (e.g. the RocksDB spool's synced puts);
* :mod:`bench.common` — the harness shared with ``tests/``: a real ``kumocore serve``
  process, the test DNS server, recording sinks, hostile MXes and raw SMTP clients.

``tests/`` may import ``bench.common`` (and the attack code of ``bench.reliability`` it
replays); nothing under ``bench/`` imports ``tests``. See docs/contributing.md.
"""
