"""``kumo.define_spool``: where message bodies (``data``) and envelopes (``meta``) live.

The ``kind`` is not checked here: spool kinds come from plugins
(``kumo_register_spool_kinds``), and the registry refuses an unknown kind naming the
kinds it knows once every plugin is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kumocore.config.converters import BOOL, STRING, TABLE, enum, parsed
from kumocore.config.duration import byte_size
from kumocore.config.options import Options, option
from kumocore.digits import decimal
from kumocore.errors import ConfigError


@dataclass(frozen=True, slots=True)
class MinFree:
    """``min_free_space`` / ``min_free_inodes``: ``"10%"`` of the total, or an amount.

    An amount is bytes for space (``"5 GiB"``, ``5000000000``) and a count for inodes.
    Below it, reception is refused (``4.3.2 disk is too full``) until space is freed.
    """

    percent: int | None = None
    amount: int | None = None

    @classmethod
    def parse(cls, value: str | int | MinFree) -> MinFree:
        """Parse ``"10%"``, a number, or a size string; raises :class:`ConfigError`."""
        if isinstance(value, MinFree):
            return value
        if isinstance(value, str) and value.strip().endswith("%"):
            text = value.strip()[:-1].strip()
            percent = decimal(text, max_digits=3)
            if percent is None or percent > 100:
                raise ConfigError("expected a percentage from 0% to 100%")
            return cls(percent=percent)
        try:
            return cls(amount=byte_size(value))
        except ValueError as exc:
            raise ConfigError(f"{exc}, or a percentage like '10%'") from None

    def threshold(self, total: int) -> int:
        """The minimum free amount for a filesystem with ``total`` bytes (or inodes)."""
        if self.percent is None:
            return self.amount or 0
        return math.ceil(total * self.percent / 100)

    def is_satisfied(self, free: int, total: int) -> bool:
        return free >= self.threshold(total)

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.amount)


MIN_FREE = parsed(MinFree.parse, dump=str)

#: The two spools KumoMTA uses; a policy defining any other name is mistaken.
SPOOL_NAMES = ("data", "meta")


class SpoolDefinition(Options, options_for="kumo.define_spool"):
    """One ``kumo.define_spool { name = 'data', path = '/var/spool/kumo/data', ... }``."""

    name: str = option(enum(*SPOOL_NAMES))
    path: str = option(STRING)
    kind: str = option(STRING, default="LocalDisk")
    flush: bool = option(BOOL, default=False)
    rocks_params: dict[str, Any] | None = option(TABLE, default=None)
    min_free_space: MinFree = option(MIN_FREE, default="10%")
    min_free_inodes: MinFree = option(MIN_FREE, default="10%")

    def factory_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the kind's ``SpoolFactory``.

        The free-space minimums are left out: the core watches them for every kind.
        """
        return {
            "name": self.name,
            "path": self.path,
            "flush": self.flush,
            "rocks_params": dict(self.rocks_params or {}),
        }
