"""Sites whose TLS is broken: ``remember_broken_tls`` and
``opportunistic_tls_reconnect_on_failed_handshake`` (KumoMTA's egress path options).

With ``remember_broken_tls = '3 days'``, a site whose STARTTLS handshake (or the EHLO
after it) failed is remembered for that long, in this process's memory only (as in
KumoMTA: not shared, forgotten at restart). Meanwhile ``Opportunistic`` modes connect as
if STARTTLS were not offered, and ``Required`` modes fail saying that
``remember_broken_tls`` is set. ``opportunistic_tls_reconnect_on_failed_handshake``
instead retries the same address at once without TLS (``Opportunistic`` modes only).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kumocore.mail.response import Response
from kumocore.node.cache_capacity import NamedLru

if TYPE_CHECKING:
    from kumocore.config.egress import EgressPathConfig


class BrokenTls:
    """Remembered broken-TLS sites of one process: ``site name → monotonic expiry``."""

    def __init__(self) -> None:
        # At most KumoMTA's smtp_dispatcher_broken_tls capacity of sites (64 Ki by
        # default; kumo.set_lruttl_cache_capacity): a remembered site outlives its
        # entry only if that many other sites failed since.
        # The value is the expiry itself (float() of a float returns it, at C speed).
        self._until: NamedLru[str, float] = NamedLru("smtp_dispatcher_broken_tls", expiry=float)

    def is_broken(self, site: str) -> bool:
        return self._until.lookup(site, time.monotonic()) is not None

    def tls_mode(self, site: str, config: EgressPathConfig) -> str | Response:
        """The mode to connect to ``site`` with, or the refusal of a Required mode."""
        mode = str(config.enable_tls)
        if not self.is_broken(site) or mode == "Disabled":
            return mode
        if mode.startswith("Opportunistic"):
            return "Disabled"
        return Response.parse(
            451, f"4.7.0 TLS is required but site {site} is remembered as having broken TLS "
            "(remember_broken_tls is set)")

    def failed(self, site: str, config: EgressPathConfig) -> None:
        """The TLS of ``site`` just failed: remember it when the path asks to."""
        if config.remember_broken_tls:
            self._until[site] = time.monotonic() + float(config.remember_broken_tls)


def reconnect_in_clear(config: EgressPathConfig, mode: str) -> bool:
    """Whether a failed handshake in ``mode`` is retried at once without TLS."""
    return config.opportunistic_tls_reconnect_on_failed_handshake and mode.startswith(
        "Opportunistic")
