"""``kumo.make_queue_config``: how a scheduled queue retries, expires and routes messages.

Defaults and the retry schedule are KumoMTA's (crates/kumod/src/queue/config.rs): the
delay before attempt ``n + 1`` is ``retry_interval * 2**n``, capped by
``max_retry_interval``, plus a small random jitter so that a burst of failures does not
come back as a burst of retries.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from kumocore.config.conv import Conv, Path
from kumocore.config.converters import STRING, THROTTLE, enum, list_of
from kumocore.config.egress import MEMORY_REDUCTION_POLICIES
from kumocore.config.kumo_serde import DURATION
from kumocore.config.options import Options, nested, option
from kumocore.config.protocols import SMTP_DEFAULT, DeliveryProtocol, SmtpProtocol, parse_protocol
from kumocore.throttle.spec import ThrottleSpec

#: The pool used when a queue names none: one source, also "unspecified", binding nothing.
UNSPECIFIED_POOL = "unspecified"

# 2**1000 times any sane interval is still a finite float, and far beyond any max_age.
_MAX_DOUBLINGS = 1000


class QueueShrinkPolicy(Options, options_for="kumo.make_queue_config shrink_policy"):
    """After ``interval`` in the queue, shrink messages' in-memory form per ``policy``."""

    interval: float = option(DURATION)
    policy: str = option(enum(*MEMORY_REDUCTION_POLICIES))


def _load_protocol(value: Any, path: Path) -> DeliveryProtocol | None:
    # SMTP to the MX hosts, written out (as to_dict writes it), is no protocol at all.
    protocol = parse_protocol(value, path)
    return None if protocol == SMTP_DEFAULT else protocol


PROTOCOL = Conv(_load_protocol, dump=lambda protocol: protocol.to_dict())


def _protocol_table(protocol: DeliveryProtocol | None) -> dict[str, Any]:
    if protocol is None:
        return {"smtp": {"mx_list": [], "treat_mx_list_as_secure": False}}
    table = protocol.to_dict()
    if isinstance(protocol, SmtpProtocol):
        # A list even when the policy's empty Lua table arrived as a map: KumoMTA writes
        # its typed Vec, and TOML tells [] from {}.
        mx_list = (table.get("smtp") or {}).get("mx_list") or []
        table["smtp"] = {"mx_list": list(mx_list),
                         "treat_mx_list_as_secure": protocol.treat_mx_list_as_secure}  # fmt: skip
    return table


class QueueConfig(
    Options,
    options_for="kumo.make_queue_config",
    # Parsed, not acted on yet: refused at load (unless --allow-unsupported) when set.
    unsupported=(
        "strategy",
        "timerwheel_tick_interval",
    ),
):
    """Settings of one scheduled queue. Durations are in seconds."""

    retry_interval: float = option(DURATION, default="20m")
    max_retry_interval: float | None = option(DURATION, default=None)
    max_age: float = option(DURATION, default="7 days")
    egress_pool: str | None = option(STRING, default=None)
    max_message_rate: ThrottleSpec | None = option(THROTTLE, default=None)
    # SMTP to the routing domain's MX when absent; else {smtp={mx_list=...}},
    # {maildir_path=...}, or a protocol registered in kumocore.config.protocols.
    protocol: DeliveryProtocol | None = option(PROTOCOL, default=None)
    # How long an emptied queue stays before it is reaped (kumocore.queue.queue_reaper).
    reap_interval: float = option(DURATION, default="10m")
    refresh_interval: float = option(DURATION, default="1m")
    timerwheel_tick_interval: float | None = option(DURATION, default=None)
    strategy: str = option(
        enum("TimerWheel", "SkipList", "SingletonTimerWheel", "SingletonTimerWheelV2"),
        default="SingletonTimerWheel",
    )
    refresh_strategy: str = option(enum("Ttl", "Epoch"), default="Ttl")
    # The provider named in records the scheduled queue logs itself (Expiration,
    # AdminBounce...), as KumoMTA; delivery records name their egress path's.
    provider_name: str | None = option(STRING, default=None)
    shrink_policy: tuple[QueueShrinkPolicy, ...] = option(
        list_of(nested(QueueShrinkPolicy)), default=[]
    )

    def memory_policy(self, wait: float) -> str:
        """KumoMTA's ``shrink_policy`` for a message going back to wait ``wait`` seconds:
        the last entry whose ``interval`` the wait reaches (none: ``ShrinkDataAndMeta``).
        kumocore keeps a waiting message's metadata in memory either way, so only
        ``NoShrink`` (keep the body too) acts differently from the default."""
        chosen = "ShrinkDataAndMeta"
        for entry in self.shrink_policy:
            if wait >= entry.interval:
                chosen = entry.policy
        return chosen

    def __post_init__(self) -> None:
        # A zero interval would retry a failing message in a tight loop.
        for key in ("retry_interval", "max_retry_interval"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                path = Path(self.options_for, key)
                raise path.invalid("expected a duration greater than 0", value)

    def to_dict(self) -> dict[str, Any]:
        """KumoMTA's serde form (:mod:`kumocore.config.kumo_serde`); no ``protocol`` is
        KumoMTA's default one, SMTP to the MX hosts, and SMTP's own defaults are filled
        in, as KumoMTA writes them."""
        table = super().to_dict()
        table["protocol"] = _protocol_table(self.protocol)
        return table

    @property
    def pool_name(self) -> str:
        """``egress_pool``, or KumoMTA's ``"unspecified"`` pool when none is named."""
        return self.egress_pool or UNSPECIFIED_POOL

    def delay_for_attempt(self, attempt: int) -> float:
        """Seconds to wait after a message's ``attempt``-th failure (0-based).

        ``retry_interval * 2**attempt``, capped by ``max_retry_interval`` when set:
        20m, 40m, 80m, 160m... with the defaults.
        """
        if attempt < 0:
            raise ValueError(f"attempt must not be negative, got {attempt}")
        delay = math.ldexp(self.retry_interval, min(attempt, _MAX_DOUBLINGS))
        if self.max_retry_interval is not None:
            delay = min(delay, self.max_retry_interval)
        return delay

    def jitter_bound(self) -> float:
        """Half-width of the uniform jitter added to each delay: ``min(ri/20, 60s) / 2``."""
        return min(self.retry_interval / 20, 60.0) / 2

    def jittered_delay(
        self, attempt: int, *, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """:meth:`delay_for_attempt` plus a random jitter within ``±jitter_bound()``."""
        bound = self.jitter_bound()
        return max(0.0, self.delay_for_attempt(attempt) + uniform(-bound, bound))

    def infer_num_attempts(self, age: float) -> int:
        """How many attempts a message ``age`` seconds old has had, replaying the schedule.

        KumoMTA does not persist attempt counts: after a restart they are inferred so.
        """
        elapsed, attempts = 0.0, 0
        while True:
            delay = self.delay_for_attempt(attempts)
            if delay == self.max_retry_interval and delay > 0:
                # Capped from here on: the rest of the schedule is evenly spaced.
                return attempts + max(0, int((age - elapsed) // delay))
            if elapsed + delay > age:
                return attempts
            elapsed += delay
            attempts += 1

    def is_expired(self, age: float) -> bool:
        """Whether a message ``age`` seconds old has outlived ``max_age``."""
        return age >= self.max_age
