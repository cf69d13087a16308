"""Real reception parts for listener tests: a kumocore.testing node (in-memory spool, real
intake and queues, its log records kept) whose queues are all suspended, so what the
listeners accept stays queued and spooled for the test to read (delivery is tested
elsewhere). Listener tests start their own listeners on ``reception.runtime``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kumocore.logs.record import LogRecord
from kumocore.mail.message import Message
from kumocore.node.runtime import Runtime
from kumocore.reception.smtp.server import EsmtpListener, start_esmtp_listener
from kumocore.spool.base import MemorySpool
from kumocore.testing import Node

HOSTNAME = "mx.kumocore.test"


@dataclass
class Reception:
    node: Node

    @property
    def runtime(self) -> Runtime:
        return self.node.runtime

    @property
    def messages(self) -> list[Message]:
        """Every message the intake queued, in order."""
        return list(self.runtime.services.queues.messages.values())

    def _spool(self, name: str) -> MemorySpool:
        store = self.runtime.services.store
        assert store is not None
        spool = store.data if name == "data" else store.meta
        assert isinstance(spool, MemorySpool)
        return spool

    @property
    def data_spool(self) -> MemorySpool:
        return self._spool("data")

    @property
    def meta_spool(self) -> MemorySpool:
        return self._spool("meta")

    async def records(self, *types: str, settle: float = 0.05) -> list[LogRecord]:
        """Log records of the given types once the dispatcher delivered them."""
        await asyncio.sleep(settle)
        return [r for r in self.node.log_sink.records if not types or r.type.value in types]

    async def close(self) -> None:
        await self.node.stop()


async def make_reception(
    *policies: object, hostname: str = HOSTNAME, policy_file: str | None = None,
    plugins: tuple[tuple[str, object], ...] = (),
) -> Reception:
    """A started node whose policy is ``policies`` (objects with ``@hookimpl`` methods), or
    the file ``policy_file`` (loaded and its ``init`` run, with the given extra ``plugins``).
    Its only own listener is HTTP (for the admin API that holds the queues)."""
    extra: list[Any] = [*plugins, *policies]
    node = Node(None if policy_file is None else Path(policy_file), plugins=extra,
                esmtp=None, sink=False, entrypoints=False, hostname=hostname)
    await node.start()
    await node.hold()
    return Reception(node)


@contextlib.asynccontextmanager
async def lua_policy_listener(policy: Path) -> AsyncIterator[tuple[EsmtpListener, Reception]]:
    """A reception running the Lua policy file ``policy`` (through the built-in
    ``lua_policy`` plugin), with the one ESMTP listener that policy defines started."""
    import kumocore_lua_policy as lua_policy  # a built-in plugin: always installed

    reception = await make_reception(
        policy_file=str(policy), plugins=(("lua_policy", lua_policy.LuaPolicyPlugin()),)
    )
    [config] = reception.runtime.config.esmtp_listeners
    listener = await start_esmtp_listener(reception.runtime, config)
    try:
        yield listener, reception
    finally:
        await listener.close()
        await reception.close()
