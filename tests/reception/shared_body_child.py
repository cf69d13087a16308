"""Child process for the shared-body kill -9 test: saves transactions whose recipients
share one body and removes older ones, printing each step once it returned."""

from __future__ import annotations

import asyncio
import sys

from kumocore.mail.body import SharedBody
from kumocore.mail.message import Message
from kumocore.spool.store import MessageStore
from tests.reception.shared_body_stores import BODY, RECIPIENTS, open_store


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(kind: str, path: str) -> None:
    store: MessageStore = open_store(kind, path)
    saved: list[list[Message]] = []
    for n in range(100_000):
        shared = SharedBody(BODY)
        messages = [Message("a@s.test", f"r{i}@example.com", f"Received: {n}.{i}\r\n".encode(),
                            shared=shared) for i in range(RECIPIENTS)]
        await asyncio.gather(*(store.save(m) for m in messages))
        say("SAVED " + " ".join(f"{m.id}:{n}.{i}" for i, m in enumerate(messages)))
        saved.append(messages)
        if len(saved) > 2:  # the oldest transaction is delivered, one message at a time
            for message in saved.pop(0):
                say(f"REMOVING {message.id}")  # from here on it may be gone (delivered)
                await store.remove(message)
                say(f"REMOVED {message.id}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
