"""The reliability suite: ``python -m bench.reliability --mode short|full [--only SECTION]``.

:mod:`.suite` lists the sections (``SECTIONS``) and runs them; each section lives in its own
module (``section_<name>(bench)``); the attacks they replay (``abuse*``) and the crash
experiment (``crash*``) are reused by ``tests/reliability``.
"""
