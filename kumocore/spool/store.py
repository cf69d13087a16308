"""Messages on disk: bodies in the ``data`` spool, envelope + meta in the ``meta`` spool.

A message alone in its transaction has a data record under its own id. The messages of a
multi-recipient transaction share ONE data record, under a body key (``<id>.body``,
:mod:`kumocore.mail.body`); each meta record names that key and carries the message's head
(its own header lines, e.g. ``Received``). The store counts, in memory, the messages
still referencing each shared body and deletes the body with the last of them.

Write order is data first, then meta: the meta record is the commit marker, so a message
whose meta is on disk always has its body. A data spool with ``put_before``
(:class:`~kumocore.spool.base.OrderedPuts`) writes both in one commit and keeps that
order. Removal runs the other way, meta first, then body; neither delete is synced, so a
data spool with ``delete_after`` (:class:`~kumocore.spool.base.OrderedDeletes`) holds
the body's delete back until the meta's is durable (else a power cut could keep a
delivered message's meta without its body). Crash safety without a durable counter:

* a crash between the body and the metas, or between deleting the last meta and its body,
  leaves a body no meta references: recovery rebuilds the counts from the meta records
  and then deletes every data record no meta (not even a quarantined one) references
  (:meth:`MessageStore.collect_garbage`);
* while recovery is still scanning, no shared body is deleted (a message delivered early
  could otherwise drop a body that metas not yet scanned still use).

Reading the store back at start (recovery, quarantine, orphan collection) is the base
class, :mod:`kumocore.spool.store_recovery`.
"""

from __future__ import annotations

import asyncio
import functools
from time import perf_counter
from typing import TYPE_CHECKING

import structlog

from kumocore.node.latency import Histogram
from kumocore.spool.base import (
    BatchWrites,
    MemorySpool,
    OrderedDeletes,
    OrderedPuts,
    Spool,
    delete_all,
    put_all,
)
from kumocore.spool.store_recovery import StoreRecovery

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kumocore.mail.body import SharedBody
    from kumocore.mail.message import Message

log = structlog.get_logger("kumocore.spool")


class MessageStore(StoreRecovery):
    """Durable storage of whole messages over a data spool and a meta spool."""

    def __init__(self, data: Spool, meta: Spool) -> None:
        self.data = data
        self.meta = meta
        self.quarantined = 0
        self.collected = 0  # orphan data records removed by the last recovery
        # Shared bodies: messages (by id) referencing each key, and the one write per key.
        self._refs: dict[str, int] = {}
        self._key_of: dict[str, str] = {}
        self._body_puts: dict[str, asyncio.Task[None]] = {}
        self._recovering = False
        # Keys written while the start-up scan runs (kumocore.spool.store_recovery).
        self._fresh: set[str] | None = None
        # Body and commit marker in one commit, when the data spool's kind can (in order).
        self._put_pair = data.put_before if isinstance(data, OrderedPuts) else None
        # Marker and body deleted with one call, the body held back until the marker's
        # delete is durable, when the data spool's kind can.
        self._delete_pair = data.delete_after if isinstance(data, OrderedDeletes) else None
        # The same for lists of them (remove_many), when the kind also takes lists.
        self._delete_lists = data.delete_many_after if isinstance(data, BatchWrites) else None
        # Accepted with deferred_spool and not written yet, by id (see defer()), and the
        # writes of such messages under way: a remove waits for one (else its record,
        # landing after the remove, would bring a delivered message back at the next start).
        self._unsaved: dict[str, Message] = {}
        self._writing: dict[str, asyncio.Future[None]] = {}
        #: Whether a message may still be held (``deferred_spool``): no longer once the
        #: node stops (:meth:`write_held`); what is accepted then is written at once.
        self.holds = True
        #: KumoMTA's ``message_save_latency``: each :meth:`save` until it is durable.
        self.save_latency = Histogram()
        #: KumoMTA's ``message_data_load_latency``: each :meth:`load_data`.
        self.data_load_latency = Histogram()

    @property
    def bodies_in_memory(self) -> bool:
        """Whether the data spool is this process's memory (the in-memory spool of a node
        that defines none). A deferred message then keeps its body: dropping it would free
        nothing and cost a copy out of that spool at the next attempt."""
        return isinstance(self.data, MemorySpool)

    def defer(self, message: Message) -> None:
        """Accept ``message`` without writing it (KumoMTA's ``deferred_spool``): it is
        written the first time its state must be kept (:meth:`save_meta`: its first
        transient failure, a rebind, a transfer) or at :meth:`close`, and never if it
        reaches a final outcome first. A crash before that loses it, as in KumoMTA."""
        message.unspooled = True
        self._unsaved[message.id] = message

    @property
    def unsaved(self) -> int:
        """How many accepted messages are held in memory only (``deferred_spool``)."""
        return len(self._unsaved)

    def write_soon(self, message: Message) -> None:
        """Start writing ``message`` if it is held (it has to wait in a scheduled queue:
        KumoMTA writes a ``deferred_spool`` message then); a failed write leaves it held,
        to be written by its next save or at :meth:`close`."""
        if message.unspooled:
            self._write_held(message)

    async def write_held(self) -> None:
        """Write every message still held in memory (at shutdown: the node stops this
        early, while deliveries in flight finish, and :meth:`close` once more)."""
        self.holds = False
        held = list(self._unsaved.values())
        if not held:
            return
        results = await asyncio.gather(*map(self.save, held), return_exceptions=True)
        lost = [m.id for m, r in zip(held, results, strict=True) if isinstance(r, BaseException)]
        log.info("deferred_spool messages written at shutdown", count=len(held) - len(lost))
        if lost:
            log.error("deferred_spool messages could not be written at shutdown",
                      count=len(lost), ids=lost[:10])

    async def save(self, message: Message) -> None:
        """Make ``message`` durable; when this returns, a 250 may be sent."""
        started = perf_counter()
        writing = self._writing.get(message.id)
        if writing is not None:  # a held message's write under way: this one follows it
            await asyncio.wait([writing])
        if message.unspooled:
            await asyncio.shield(self._write_held(message))
        else:
            await self._write(message)
        self.save_latency.observe(perf_counter() - started)

    def _write_held(self, message: Message) -> asyncio.Future[None]:
        """The write of held ``message`` (one at a time): it stops being held once done."""
        writing = self._writing.get(message.id)
        if writing is None:
            writing = self._writing[message.id] = asyncio.ensure_future(self._write(message))
            writing.add_done_callback(functools.partial(self._held_written, message))
        return writing

    def _held_written(self, message: Message, writing: asyncio.Future[None]) -> None:
        self._writing.pop(message.id, None)
        error = None if writing.cancelled() else writing.exception()
        if writing.cancelled() or error is not None:
            log.error("deferred_spool message not written; still held", id=message.id,
                      error=str(error))  # fmt: skip
        elif self._unsaved.pop(message.id, None) is not None:  # (not removed meanwhile)
            message.unspooled = False

    async def _write(self, message: Message) -> None:
        shared = message.shared
        fresh = self._fresh
        if fresh is not None:  # the start-up scan runs: not to be recovered or collected
            fresh.add(message.id)
            if shared is not None and not shared.sole:
                fresh.add(shared.key)
        if shared is None or shared.sole:  # its own record (a sole body with its head)
            message.spool_ref = None
            # A message saved before with a shared body and edited since (a policy event
            # on a deferred message) now has its own record: it stops counting as a user
            # of the shared body, which goes once its last user does.
            unused = self._release_body(message.id) if message.id in self._key_of else None
            if self._put_pair is not None:
                await self._put_pair(
                    message.id, message.data, self.meta, message.id, message.meta_bytes())
            else:
                await self.data.put(message.id, message.data)
                await self.meta.put(message.id, message.meta_bytes())
            if unused is not None:
                await self.data.delete(unused)
            return
        await self._put_body(shared)
        message.spool_ref = (shared.key, message.head)
        await self.meta.put(message.id, message.meta_bytes())
        self._reference(message.id, shared.key)

    async def _put_body(self, shared: SharedBody) -> None:
        """Write a shared body once, however many of its messages are saved at once."""
        task = self._body_puts.get(shared.key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(self.data.put(shared.key, shared.data))
            self._body_puts[shared.key] = task
        await asyncio.shield(task)

    def _reference(self, message_id: str, key: str) -> None:
        if self._key_of.get(message_id) == key:
            return  # saved again (its meta changed): still one user of the body
        self._key_of[message_id] = key
        self._refs[key] = self._refs.get(key, 0) + 1

    async def save_meta(self, message: Message) -> None:
        """Persist changed meta/attempt state (e.g. after a transient failure); a message
        not written yet (``deferred_spool``) is written whole."""
        if message.unspooled or message.id in self._writing:
            await self.save(message)
            return
        await self.meta.put(message.id, message.meta_bytes())

    async def save_metas(self, messages: Sequence[Message]) -> None:
        """:meth:`save_meta` for many messages at once (a rebind's): the metas of those
        written already as one write where the meta spool takes lists
        (:class:`~kumocore.spool.base.BatchWrites`); one not written yet is written whole."""
        whole: list[Message] = []
        metas: list[tuple[str, bytes]] = []
        for message in messages:
            if message.unspooled or message.id in self._writing:
                whole.append(message)
            else:
                metas.append((message.id, message.meta_bytes()))
        await put_all(self.meta, metas)
        for message in whole:
            await self.save(message)

    async def save_meta_if_written(self, message: Message) -> None:
        """:meth:`save_meta` for a message in the spool (or being written); nothing for
        one held in memory (``deferred_spool``): whatever writes it writes this meta."""
        if message.unspooled and message.id not in self._writing:
            return
        await self.save_meta(message)

    async def load_data(self, message: Message | str) -> bytes | None:
        """The spooled bytes of ``message`` (its head + shared body, or its own record).

        Given only an id, a message saved with a shared body is looked up by the key
        recorded for it; its head is then not known and only the body is returned.
        Each call is timed (``message_data_load_latency``), a failed one too.
        """
        started = perf_counter()
        try:
            if isinstance(message, str):
                key = self._key_of.get(message)
                return await self.data.get(key or message)
            if message.spool_ref is None:
                return await self.data.get(message.id)
            key, head = message.spool_ref
            body = await self.data.get(key)
            return None if body is None else head + body
        finally:
            self.data_load_latency.observe(perf_counter() - started)

    async def remove(self, message: Message | str) -> None:
        """Forget a message that was delivered, bounced or expired (meta first)."""
        message_id = message if isinstance(message, str) else message.id
        unsaved = self._unsaved.pop(message_id, None)
        if unsaved is not None:
            unsaved.unspooled = False
            writing = self._writing.get(message_id)
            if writing is None:
                return  # never written: nothing to delete
            await asyncio.wait([writing])  # being written: deleted once it is there
        key = self._release_body(message_id)
        if key is None:
            await self.meta.delete(message_id)
        elif self._delete_pair is not None:
            await self._delete_pair(key, self.meta, message_id)
        else:
            await self.meta.delete(message_id)
            await self.data.delete(key)

    async def remove_many(self, message_ids: Sequence[str]) -> None:
        """:meth:`remove` for many messages at once (an admin bounce's): the metas'
        deletes, then the bodies', each list as one write where the spool kinds take
        lists (:class:`~kumocore.spool.base.BatchWrites`); a body's delete is held back
        until its meta's is durable, as :meth:`remove` holds it."""
        alone: list[str] = []  # metas whose body others still use (or recovery decides)
        pairs: list[tuple[str, str]] = []  # (body key, meta key)
        held: list[str] = []
        for message_id in message_ids:
            if message_id in self._unsaved:  # deferred_spool: maybe never written
                held.append(message_id)
                continue
            key = self._release_body(message_id)
            if key is None:
                alone.append(message_id)
            else:
                pairs.append((key, message_id))
        if self._delete_lists is not None:
            await self._delete_lists([body for body, _ in pairs], self.meta,
                                     alone + [meta for _, meta in pairs])  # fmt: skip
        elif self._delete_pair is not None:
            await delete_all(self.meta, alone)
            for body, meta in pairs:
                await self._delete_pair(body, self.meta, meta)
        else:
            await delete_all(self.meta, alone + [meta for _, meta in pairs])
            await delete_all(self.data, [body for body, _ in pairs])
        for message_id in held:
            await self.remove(message_id)

    def _release_body(self, message_id: str) -> str | None:
        """The data record that goes with ``message_id``'s meta: its own, or its shared
        body once no other message uses it; None while others do (or while recovery is
        still counting, when collect_garbage decides)."""
        key = self._key_of.pop(message_id, None)
        if key is None:
            return message_id
        left = self._refs.get(key, 0) - 1
        if left > 0:
            self._refs[key] = left
            return None
        self._refs.pop(key, None)
        self._body_puts.pop(key, None)
        return None if self._recovering else key

    def shared_bodies(self) -> dict[str, int]:
        """Shared body key → messages still referencing it (for tests and the admin)."""
        return dict(self._refs)

    async def close(self) -> None:
        """Write what ``deferred_spool`` still holds in memory, then close the spools."""
        await self.write_held()
        if self._writing:  # background writes of messages removed meanwhile
            await asyncio.wait(list(self._writing.values()))
        await self.meta.close()
        await self.data.close()
