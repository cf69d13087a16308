"""Posting xfer payloads the way a KumoMTA source node does (gzip, octet-stream)."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

import aiohttp

from kumocore.xfer.wire import XferPayload, encode_payload

XFER_PATH = "/api/xfer/inject/v1"
BODY = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: moved\r\n\r\nhello\r\n"


def payload(**changes: Any) -> XferPayload:
    """What a KumoMTA source sends for a message of its ``spring:acme@example.com`` queue
    (a fresh one each call: its spool id, a UUIDv1 as bare hex, is new)."""
    source_id = changes.get("id", uuid.uuid1().hex)
    fields: dict[str, Any] = {
        "id": source_id,
        "sender": "a@example.org", "recipients": ("b@example.com",),
        "meta": {"xfer_prior_id": source_id,
                 "xfer_prior_node": "1b8b4c1c-5e7e-4e86-9a31-aaaaaaaaaaaa",
                 "tenant_note": "kept",
                 "xfer_queue_info": {"campaign": "spring", "tenant": "acme",
                                     "num_attempts": 3}},
        "data": BODY,
    }  # fmt: skip
    fields.update(changes)
    return XferPayload(**fields)


async def post_raw(
    url: str,
    body: bytes,
    *,
    gzipped: bool = True,
    content_type: str = "application/octet-stream",
    source: str = "127.0.0.1",
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url + XFER_PATH, data=body, headers=headers) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def post_payload(url: str, sent: XferPayload, **options: Any) -> tuple[int, Any]:
    return await post_raw(url, encode_payload(sent), **options)
