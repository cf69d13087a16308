"""``POST /api/admin/spool-compact/v1`` and ``kumocore spool-compact --name NAME``:
KumoMTA's forced flush and full compaction of one spool.

The request is KumoMTA's: ``{"name": "<a kumo.define_spool name>"}``. A spool whose kind
can compact (:class:`kumocore.spool.Compactable`: RocksDB) is flushed and compacted over
its whole key range; any other kind has nothing to do, as in KumoMTA. The answer is an
empty 200 once done. An unknown name is a 404, a storage error a 500, each with a JSON
error. With ``serve --workers N`` every worker compacts its own shard, and the node's
answer is the first failure, if any.

Bounded: one compaction per spool at a time. A request that comes while one is running
waits for that one and shares its outcome, rather than queueing another full pass.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.admin.api_support import ADMIN_PREFIX, ApiError, json_errors, read_object, services_of
from kumocore.admin.peers import PeerAnswer
from kumocore.spool import Compactable
from kumocore.spool.recovering import configured_kind

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

__all__ = ["SPOOL_COMPACT_PATH", "add_spool_compact_route", "add_spool_compact_subcommand",
           "merge_compactions"]  # fmt: skip

SPOOL_COMPACT_PATH = f"{ADMIN_PREFIX}/spool-compact/v1"


class SpoolCompactApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        #: The compaction running for each spool name (shared by the requests meanwhile).
        self._running: dict[str, asyncio.Future[None]] = {}

    @json_errors
    async def compact(self, request: web.Request) -> web.StreamResponse:
        body = await read_object(request, ("name",))
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "field 'name' is required: the name of a kumo.define_spool")
        store = services_of(self.runtime).store
        spools = {spool.name: spool for spool in (store.data, store.meta)}
        spool = spools.get(name)
        if spool is None:
            raise ApiError(404, f"no spool named {name!r}; this node has "
                           f"{', '.join(map(repr, sorted(spools)))}")  # fmt: skip
        kind = configured_kind(spool)
        if not isinstance(kind, Compactable):
            return web.Response(status=200)  # nothing to compact, as in KumoMTA
        running = self._running.get(name)
        if running is None:
            running = asyncio.ensure_future(kind.compact())
            self._running[name] = running
            running.add_done_callback(lambda _: self._running.pop(name, None))
        try:
            await asyncio.shield(running)  # a client that hangs up does not stop it
        except Exception as exc:
            raise ApiError(500, f"spool {name!r}: compaction failed: {exc}") from exc
        return web.Response(status=200)


def merge_compactions(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """Every worker compacted its shard: the node's answer is the first failure, if any."""
    if local.status >= 400:
        return local
    for answer in answers:
        if answer.status >= 400:
            return web.Response(status=answer.status, body=answer.body,
                                content_type=answer.content_type)  # fmt: skip
    return local


def add_spool_compact_route(app: web.Application, runtime: Runtime) -> None:
    """Add the endpoint to ``app`` (called by :func:`kumocore.admin.routes.add_admin_routes`)."""
    app.router.add_post(SPOOL_COMPACT_PATH, SpoolCompactApi(runtime).compact)


def _run(args: argparse.Namespace) -> int:
    from kumocore.admin.cli_client import request_raw

    request_raw(args.endpoint, "POST", SPOOL_COMPACT_PATH, {"name": args.name},
                timeout=args.timeout)  # fmt: skip
    return 0  # as kcli: nothing printed when it worked


def add_spool_compact_subcommand(subparsers: Any) -> None:
    """Add ``spool-compact`` (kcli's name and option) to the admin CLI."""
    from kumocore.admin.cli_client import client_options, guarded

    parser = subparsers.add_parser(
        "spool-compact", help="flush and fully compact one spool (kcli's spool-compact)",
        description="Force a flush and a full compaction of the named spool on every worker "
        "(RocksDB spools; other kinds have nothing to do). A diagnostic: RocksDB compacts "
        "on its own. A storage error is reported and the command exits 1. Example: "
        "kumocore spool-compact --name data")
    parser.add_argument("--name", required=True,
                        help="the spool, as named by kumo.define_spool (data or meta)")
    client_options(parser)
    parser.set_defaults(handler=guarded(_run))
