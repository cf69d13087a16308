"""SPF (RFC 7208) for policies: ``kumo.spf.check_host`` and ``kumo.spf.check_msg``.

This package owns the SPF evaluator and nothing else: DNS itself is kumocore's resolver
(:mod:`kumocore.dns`), and the Authentication-Results header is the message's business.

:mod:`.record` parses a record, :mod:`.macros` expands macro strings, :mod:`.lookups`
asks DNS within the RFC's limits, :mod:`.evaluator` runs ``check_host()`` and
:mod:`.policy` contributes the ``kumo.spf.*`` functions.
"""

from __future__ import annotations

from kumocore.spf.evaluator import CheckHostParams, check_host
from kumocore.spf.result import DISPOSITIONS, SpfResult

__all__ = ["DISPOSITIONS", "CheckHostParams", "SpfResult", "check_host"]
