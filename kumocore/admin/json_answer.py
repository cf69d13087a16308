"""JSON answers of the admin API, encoded off the slow path.

Apart from :mod:`kumocore.admin.api_support` because the workers' answer merges
(:mod:`kumocore.admin.merge`) send JSON too and must not import the API's support, which
names the node's runtime: that would close an import circle through the policy's
built-in functions.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

__all__ = ["json_answer"]


def json_answer(body: Any, status: int = 200) -> web.Response:
    """``body`` as a JSON response, encoded by orjson: a 4 MB answer took ``json.dumps``
    40 ms of the event loop, orjson a tenth of that. (What orjson cannot encode, an
    integer past 64 bits in a message's meta, goes through ``json``.)"""
    try:
        encoded = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        import json

        encoded = json.dumps(body).encode()
    return web.Response(body=encoded, status=status, content_type="application/json")
