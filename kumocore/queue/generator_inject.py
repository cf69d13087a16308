"""KumoMTA's deferred HTTP generation: the queue behind ``"deferred_generation": true``.

An injection request (``POST /api/inject/v1``) with ``deferred_generation`` is not
expanded into messages while the client waits: the HTTP listener checks it, then spools
the request itself as one message into the scheduled queue :data:`GENERATOR_QUEUE_NAME`
(its sender the request's envelope sender, a null recipient, the request's JSON as its
body) and answers at once with zero counts (:mod:`kumocore.http.inject_deferred`). This
module is the other half, KumoMTA's ``HttpInjectionGenerator`` protocol.

The queue's configuration is built in (:func:`generator_queue_config`): a ten-second base
retry interval, as KumoMTA's. Its messages go to one ready queue,
``unspecified->generator.kumomta.internal@httpinject:generator``, whose "connections"
each generate one request at a time: the path's ``connection_limit``, from
``get_egress_path_config('generator.kumomta.internal', 'unspecified', ...)`` as KumoMTA's
shaping note configures it, is how many requests are taken off the queue at once; how
many of them are expanded at once is bounded for the node's other clients' sake
(:mod:`kumocore.node.work_budget`).

Per request, as KumoMTA: the request is run as an immediate injection with the
``auth_info`` and peer it was received with. Recipients that fail are that injection's
business (logged as they would be for an immediate request); the request itself is then
logged as ``Delivery`` (250 ``ok``). A request that cannot be run at all (its body no
longer parses) is a ``Bounce`` (500 and the error). Either way it leaves the spool.

A kumocore addition: the request counts in its meta the recipients it has generated
(:data:`GENERATED_META`, saved after each chunk is spooled), and a run stopped part way
(a shutdown, an aborted connection: the chunk under way is finished and counted first)
resumes after them instead of generating them again. A count that cannot be saved, or a
chunk the node refuses for now (spool disk under its floor, log sinks behind: an
immediate request's client would be told to retry), stops the request with
:class:`GenerationPaused`: a ``TransientFailure``, run again later from the last count
saved, rather than recipients dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from kumocore.config.protocols import DeliveryProtocol
from kumocore.delivery.tls import SessionInfo
from kumocore.mail.response import Response
from kumocore.node.work_budget import WorkBudget
from kumocore.queue.deferred_inject import DeferredInjectPath, open_internal_path
from kumocore.queue.dispatchers import running

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.queue.owners import DeferredOwner

__all__ = [
    "GENERATED_META",
    "GENERATOR_QUEUE_NAME",
    "GenerateRequest",
    "GenerationPaused",
    "GeneratorPath",
    "GeneratorProtocol",
    "generator_path_for",
    "generator_queue_config",
]

log = structlog.get_logger("kumocore.generator_inject")

#: The scheduled queue of deferred injection requests (KumoMTA's name).
GENERATOR_QUEUE_NAME = "generator.kumomta.internal"
#: KumoMTA's metrics name of the protocol, and its ready-queue suffix.
NAME, SUFFIX = "httpinject", "httpinject:generator"
#: What the records of this queue say in ``delivery_protocol``.
LOG_NAME = "HttpInjectionGenerator"
#: KumoMTA's hard-coded base retry interval of the queue.
RETRY_INTERVAL = "10s"
#: What the dispatcher shows while a request is expanded (``inspect-ready-q``).
DETAIL = "http_inject: try_send"

_SESSION = SessionInfo(delivery_protocol=LOG_NAME)

#: The meta key of a queued request counting its recipients generated so far, in order.
GENERATED_META = "generated_recipients"

#: Runs one queued request as an immediate injection; raises when it cannot be run.
GenerateRequest = Callable[["Message"], Awaitable[None]]


class GenerationPaused(Exception):
    """A queued request stopped part way for a reason that passes (its count of the
    recipients generated could not be saved, the node refused a chunk for now): it is
    tried again later from that count."""


@dataclass(frozen=True)
class GeneratorProtocol(DeliveryProtocol):
    """The protocol of :data:`GENERATOR_QUEUE_NAME` (never in a policy's queue config);
    ``generate`` is the node's HTTP injection, given when the node is wired."""

    generate: GenerateRequest | None = field(default=None, compare=False)


def generator_queue_config(generate: GenerateRequest | None) -> QueueConfig:
    """The built-in configuration of :data:`GENERATOR_QUEUE_NAME`, running ``generate``."""
    from kumocore.config import QueueConfig

    base = QueueConfig.from_options({"retry_interval": RETRY_INTERVAL})
    protocol = GeneratorProtocol(name=NAME, suffix=SUFFIX, log_name=LOG_NAME, generate=generate)
    return dataclasses.replace(base, protocol=protocol)


#: Request bytes (the queued JSON) a node expands at once: two requests at the HTTP
#: listener's default ``request_body_limit`` (2 MiB).
EXPANSION_BYTES = 4 * 1024 * 1024
#: Requests a node expands at once, however small: each adds a chunk to every turn of
#: the loop that other clients wait out.
EXPANSION_REQUESTS = 4


class GeneratorPath(DeferredInjectPath):
    """The ready queue of :data:`GENERATOR_QUEUE_NAME`: each connection expands requests.

    The connection loop, throttles and body loading are the deferred SMTP queue's; what
    is done with each message differs."""

    generate: GenerateRequest | None = None
    detail = DETAIL
    #: What this node expands at once, whatever the path's connection_limit (made on
    #: first use: there is one generator path per node).
    budget: WorkBudget | None = None

    async def _process(self, message: Message) -> None:
        if self.budget is None:
            self.budget = WorkBudget(EXPANSION_BYTES, EXPANSION_REQUESTS)
        async with self.budget.admitted(message.size or len(message.data)):
            await self._expand(message)

    async def _expand(self, message: Message) -> None:
        """Run the request ``message`` carries, and log how that went."""
        if not await self._load_body(message):
            return
        try:
            if self.generate is None:
                raise RuntimeError("this node has no HTTP injection to run the request with")
            await self.generate(message)
        except GenerationPaused as exc:
            log.warning("deferred injection request paused", id=message.id, error=str(exc))
            running().transfailed += 1
            self.owner.outcomes.transient(self, message, Response(451, str(exc)[:1000]), None,
                                          None, session=_SESSION)  # fmt: skip
            return
        except Exception as exc:
            log.error("deferred injection request failed", id=message.id, error=str(exc))
            running().failed += 1
            self.owner.outcomes.bounce(self, message, Response(500, str(exc)[:1000]), None,
                                       None, session=_SESSION)  # fmt: skip
            return
        except BaseException:
            message.release_data()  # cancelled: back to the spool's copy, run again later
            raise
        running().delivered += 1
        self.owner.outcomes.delivered(self, message, Response(250, "ok"), None, None,
                                      session=_SESSION)  # fmt: skip


async def generator_path_for(
    owner: DeferredOwner, queue_name: str, generate: GenerateRequest | None
) -> GeneratorPath:
    """The ready queue of the generator queue (created on first use)."""
    path = await open_internal_path(owner, queue_name, GENERATOR_QUEUE_NAME, SUFFIX,
                                    GeneratorPath)  # fmt: skip
    assert isinstance(path, GeneratorPath)
    path.generate = generate
    return path
