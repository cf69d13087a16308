"""DMARC (RFC 7489) for policies: ``kumo.dmarc.check_msg``, and the Public Suffix List
behind it (``kumo.string.psl_domain`` / ``psl_suffix``).

This package owns DMARC policy discovery and evaluation and the organizational-domain
lookups. It does not own DKIM verification (:mod:`kumocore.dkim.verify`) or SPF
(:mod:`kumocore.spf`), whose results it takes as inputs, nor DNS itself
(:mod:`kumocore.dns`).

:mod:`.psl` answers public-suffix questions, :mod:`.record` parses and discovers
``_dmarc`` records, :mod:`.alignment` compares domains, :mod:`.evaluate` runs one check
and :mod:`.policy` contributes the ``kumo.*`` functions.
"""

from __future__ import annotations

from kumocore.dmarc.evaluate import DmarcInput, DmarcOutcome, evaluate
from kumocore.dmarc.psl import normalize_domain, organizational_domain, public_suffix
from kumocore.dmarc.record import DmarcRecord, RecordError, parse_record

__all__ = [
    "DmarcInput", "DmarcOutcome", "DmarcRecord", "RecordError", "evaluate",
    "normalize_domain", "organizational_domain", "parse_record", "public_suffix",
]
