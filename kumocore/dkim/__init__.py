"""DKIM signing for kumocore: ``kumo.dkim.rsa_sha256_signer`` / ``kumo.dkim.ed25519_signer``.

See docs/dkim.md. :class:`Signer` signs; :mod:`kumocore.dkim.keys` loads and caches keys;
:func:`make_dkim_functions` provides the two policy functions.

Owns DKIM keys, signatures, ``msg:dkim_verify()`` and ARC (``msg:arc_verify()``,
``msg:arc_seal()``: :mod:`kumocore.dkim.arc`, :mod:`kumocore.dkim.arc_seal`). It does not
decide which messages are signed (the policy calls the signer) or when in reception that happens
(:mod:`kumocore.reception.smtp.receive` and :mod:`kumocore.http.inject` run the policy).
"""

from __future__ import annotations

from kumocore.dkim.keys import (
    PrivateKey,
    clear_key_cache,
    load_private_key,
    load_private_key_data,
    public_key_record,
)
from kumocore.dkim.policy import DkimSignerOptions, SignerCache, make_dkim_functions, make_signer
from kumocore.dkim.signer import Signer

__all__ = [
    "DkimSignerOptions",
    "PrivateKey",
    "Signer",
    "SignerCache",
    "clear_key_cache",
    "load_private_key",
    "load_private_key_data",
    "make_dkim_functions",
    "make_signer",
    "public_key_record",
]
