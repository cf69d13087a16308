"""What ``kumocore tsa serve`` keeps across a restart with the ``'local'`` store.

KumoMTA's tsa-daemon keeps its actions and match counts in ``PATH.state``
(``tsa.configure_tsa_db_path(PATH)``), saved every five minutes and at shutdown and read
at start, so restarting it lifts no suspension. ``kumocore tsa serve`` does the same with a
JSON file there (or at ``--state-file``): at start it reads the file into the local store (expired
actions and matches left out), and it writes the store back every :data:`SAVE_INTERVAL`
seconds and when it stops. A Redis store keeps its state itself and needs none of this.

Writes go to a temporary file, fsync'd, then renamed over the old one, so a crash mid-write
leaves the previous state, never half a file.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import orjson
import structlog

from kumocore.tsa.store import ActiveAction, LocalActionStore

log = structlog.get_logger("kumocore.tsa")

#: Seconds between saves while running (KumoMTA's daemon saves every 300).
SAVE_INTERVAL = 60.0
#: Match times kept per scope: a threshold counts within its rule's duration, and no sane
#: threshold needs more matches than this to fire.
MAX_MATCHES_KEPT = 10_000


def load_state(path: Path, store: LocalActionStore) -> int:
    """Put the unexpired actions and matches saved in ``path`` into ``store``; returns how
    many actions came back. A missing file is a first start; an unreadable one is logged
    and ignored (automation starts empty rather than not at all). A file that is not
    kumocore's (KumoMTA's tsa-daemon writes MessagePack at the same ``PATH.state``) is
    moved aside to ``PATH.state.unreadable`` first, so the next save does not destroy it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.error("automation state file unreadable; starting without it",
                  path=str(path), error=str(exc.strerror or exc))  # fmt: skip
        return 0
    try:
        data = orjson.loads(raw)
        actions = [ActiveAction.from_json(item) for item in data.get("actions", [])]
        events = {str(k): [float(t) for t in v] for k, v in data.get("events", {}).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        kept = _set_aside(path)
        log.error("automation state file is not kumocore's; starting without it",
                  path=str(path), kept_as=kept, error=str(exc))  # fmt: skip
        return 0
    return store.restore([a for a in actions if a.active], events)


def _set_aside(path: Path) -> str | None:
    """Rename an unreadable state file out of the way of the next save; its new name."""
    aside = path.with_name(path.name + ".unreadable")
    try:
        os.replace(path, aside)
    except OSError:
        return None
    return str(aside)


def save_state(path: Path, store: LocalActionStore) -> None:
    actions, events = store.snapshot()
    body = orjson.dumps({
        "saved": time.time(),
        "actions": [action.to_json() for action in actions],
        "events": {scope: times[-MAX_MATCHES_KEPT:] for scope, times in events.items()},
    })
    temporary = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(temporary, "wb") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


async def keep_saving(path: Path, store: LocalActionStore, stop: asyncio.Event) -> None:
    """Save every :data:`SAVE_INTERVAL` seconds until ``stop``, then once more."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), SAVE_INTERVAL)
        except TimeoutError:
            pass
        try:
            await asyncio.to_thread(save_state, path, store)
        except OSError as exc:
            log.error("automation state not saved", path=str(path), error=str(exc))
        if stop.is_set():
            return
