"""Relaying and OOB/ARF handling for one domain: ``kumo.make_listener_domain``.

The answer of ``get_listener_domain``, and each entry of an ESMTP listener's ``domains``
table: whether mail to the domain is relayed, from which networks it may be relayed, and
whether out-of-band bounces (``log_oob``) and feedback reports (``log_arf``) sent to it are
logged, and relayed or dropped after that. Defaults are KumoMTA's.

Its own module because it is a ``kumo.*`` function's options of its own; the ESMTP
listener (:mod:`kumocore.config.listeners`) only nests them.
"""

from __future__ import annotations

import json
from typing import Any

from kumocore.config.cidr import CidrSet
from kumocore.config.conv import Conv, Path
from kumocore.config.converters import BOOL, CIDRS, DURATION, enum
from kumocore.config.options import Options, option
from kumocore.errors import ConfigError

LOG_DISPOSITIONS = ("Ignore", "LogThenRelay", "LogThenDrop")
_LOG_ENUM = enum(*LOG_DISPOSITIONS)


def _log_disposition(value: Any, path: Path) -> str:
    # KumoMTA still accepts the older boolean form: true = LogThenRelay, false = Ignore.
    if isinstance(value, bool):
        return "LogThenRelay" if value else "Ignore"
    if isinstance(value, str) and value not in LOG_DISPOSITIONS:
        # KumoMTA's own words (its listener_domains helper's self-test matches them).
        raise ConfigError(
            f"{path.key!r} in {path.function}: invalid value: string {json.dumps(value)}, "
            "expected a boolean value or one of 'Ignore', 'LogThenDrop' or 'LogThenRelay'"
        )
    return str(_LOG_ENUM.load(value, path))


LOG_DISPOSITION = Conv(_log_disposition)


class ListenerDomain(Options, options_for="kumo.make_listener_domain"):
    """What the SMTP listener accepts for one domain (``kumo.make_listener_domain``)."""

    relay_to: bool = option(BOOL, default=False)
    relay_from: CidrSet = option(CIDRS, default=[])
    log_oob: str = option(LOG_DISPOSITION, default="Ignore")
    log_arf: str = option(LOG_DISPOSITION, default="Ignore")
    ttl: float | None = option(DURATION, default=None)  # deprecated by KumoMTA; unused

    @property
    def should_log_oob(self) -> bool:
        return self.log_oob != "Ignore"

    @property
    def should_log_arf(self) -> bool:
        return self.log_arf != "Ignore"
