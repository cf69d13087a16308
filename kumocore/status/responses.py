"""Recent receiver responses per site, for the status page ("who is pushing back?").

Outcomes (:mod:`kumocore.queue.outcomes`) call :func:`note_outcome` for every record they
log; transient failures and bounces are counted here by (site, code, enhanced code, text)
in one-minute buckets, and bounces also by classification. Memory is bounded: at most
:data:`WINDOW_MINUTES` buckets, each with at most :data:`MAX_KEYS` distinct responses (the
rest are counted under one "other" entry per site and kind), texts cut to
:data:`MAX_TEXT` characters. Everything is per process; the node view sums the workers.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.mail.response import Response

__all__ = ["MAX_KEYS", "MAX_TEXT", "WINDOW_MINUTES", "ResponseLog", "note_outcome"]

WINDOW_MINUTES = 15
MAX_KEYS = 200
MAX_TEXT = 160
#: The record kinds that carry a receiver's (or kumocore's) refusal.
COUNTED_KINDS = frozenset({"TransientFailure", "Bounce"})
OTHER = "(other responses)"

#: (kind, site, code, enhanced code, text)
Key = tuple[str, str, int, str, str]


@dataclass
class _Bucket:
    minute: int
    responses: Counter[Key] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)


class ResponseLog:
    """The per-minute buckets of one process."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._buckets: deque[_Bucket] = deque(maxlen=WINDOW_MINUTES)

    def _bucket(self) -> _Bucket:
        minute = int(self._clock() // 60)
        while self._buckets and self._buckets[0].minute <= minute - WINDOW_MINUTES:
            self._buckets.popleft()  # quiet minutes leave gaps: age out by time, not count
        if not self._buckets or self._buckets[-1].minute != minute:
            self._buckets.append(_Bucket(minute))
        return self._buckets[-1]

    def add(self, kind: str, site: str, response: Response, classification: str) -> None:
        if kind not in COUNTED_KINDS:
            return
        bucket = self._bucket()
        enhanced = str(response.enhanced_code) if response.enhanced_code else ""
        key: Key = (kind, site, response.code, enhanced, response.content[:MAX_TEXT])
        if key not in bucket.responses and len(bucket.responses) >= MAX_KEYS:
            key = (kind, site, 0, "", OTHER)
        bucket.responses[key] += 1
        if kind == "Bounce":
            bucket.classes[classification[:MAX_TEXT]] += 1

    def recent(self, minutes: int = WINDOW_MINUTES) -> dict[str, Any]:
        """Counts over the last ``minutes`` minutes: ``responses`` (busiest first) and
        ``bounce_classes``. No further back than :data:`WINDOW_MINUTES`."""
        minutes = min(minutes, WINDOW_MINUTES)
        oldest = int(self._clock() // 60) - minutes + 1
        responses: Counter[Key] = Counter()
        classes: Counter[str] = Counter()
        for bucket in self._buckets:
            if bucket.minute >= oldest:
                responses.update(bucket.responses)
                classes.update(bucket.classes)
        return {
            "minutes": minutes,
            "responses": [
                {"kind": kind, "site": site, "code": code, "enhanced_code": enhanced,
                 "text": text, "count": count}
                for (kind, site, code, enhanced, text), count in responses.most_common(MAX_KEYS)
            ],
            "bounce_classes": dict(classes.most_common()),
        }


def note_outcome(log: ResponseLog, kind: str, path: Any, response: Response,
                 classification: str) -> None:  # fmt: skip
    """Called by the outcomes for every record: counts the refusals (cheap). ``path`` is
    the message's ready queue or None. ``log`` is the queue manager's own."""
    if kind in COUNTED_KINDS:
        site = path.key.site if path is not None else ""
        log.add(kind, site, response, classification)
