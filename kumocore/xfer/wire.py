"""The xfer wire format and the transfer queue names, as KumoMTA has them.

One request carries one message: a line of JSON, a newline, then the message bytes as
spooled. The JSON is KumoMTA's ``MetaDataV1``::

    {"id": "<source id>", "sender": "a@example.com", "recipient": ["b@example.net"],
     "meta": {...}}

The sender gzips the whole (``Content-Encoding: gzip``), which the HTTP listener decodes
within ``request_body_limit`` before the handler sees it. A message waiting to be
transferred sits in the scheduled queue ``<target URL>.xfer.kumomta.internal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL

__all__ = [
    "XFER_QUEUE_SUFFIX",
    "XferPayload",
    "XferPayloadError",
    "decode_payload",
    "encode_payload",
    "is_xfer_queue_name",
    "normalise_target",
    "target_of_queue",
    "xfer_queue_name",
]

XFER_QUEUE_SUFFIX = ".xfer.kumomta.internal"

#: Where a node takes transferred messages (KumoMTA's path).
XFER_INJECT_PATH = "/api/xfer/inject/v1"


class XferPayloadError(ValueError):
    """The request body is not an xfer payload (the endpoint answers 400)."""


@dataclass(frozen=True, slots=True)
class XferPayload:
    """One transferred message as it travels."""

    id: str
    sender: str
    recipients: tuple[str, ...]
    meta: dict[str, Any]
    data: bytes


def encode_payload(payload: XferPayload) -> bytes:
    head = {"id": payload.id, "sender": payload.sender,
            "recipient": list(payload.recipients), "meta": payload.meta}  # fmt: skip
    return orjson.dumps(head) + b"\n" + payload.data


def decode_payload(body: bytes) -> XferPayload:
    """Parse a request body; raises :class:`XferPayloadError` saying what is wrong."""
    line, newline, data = body.partition(b"\n")
    if not newline:
        raise XferPayloadError("invalid xfer payload: no newline after the metadata line")
    try:
        head = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise XferPayloadError(f"invalid xfer payload: metadata is not JSON ({exc})") from None
    if not isinstance(head, dict):
        raise XferPayloadError("invalid xfer payload: metadata must be a JSON object")
    return XferPayload(
        id=_field(head, "id", str),
        sender=_field(head, "sender", str),
        recipients=tuple(_recipients(head)),
        meta=_field(head, "meta", dict),
        data=data,
    )


def _field(head: dict[str, Any], name: str, kind: type) -> Any:
    value = head.get(name)
    if not isinstance(value, kind):
        raise XferPayloadError(
            f"invalid xfer payload: field {name!r} must be a {kind.__name__}, got {value!r:.80}"
        )
    return value


def _recipients(head: dict[str, Any]) -> list[str]:
    recipients: list[str] = _field(head, "recipient", list)
    if not all(isinstance(r, str) for r in recipients):
        raise XferPayloadError("invalid xfer payload: field 'recipient' must list strings")
    return recipients


def normalise_target(value: Any) -> str:
    """A target node's URL as KumoMTA's URL type prints it (``http://host:8000/``);
    ValueError unless it is an http:// or https:// URL with a host."""
    if not isinstance(value, str) or not value:
        raise ValueError("the target node's HTTP listener URL is required")
    try:
        url = URL(value)
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r:.80}")
    return str(url.with_path(url.path or "/"))


def xfer_queue_name(target: str) -> str:
    """The transfer queue of ``target`` (a URL such as ``http://10.0.0.2:8000/``)."""
    return f"{target}{XFER_QUEUE_SUFFIX}"


def is_xfer_queue_name(name: str) -> bool:
    return name.endswith(XFER_QUEUE_SUFFIX)


def target_of_queue(name: str) -> str | None:
    """The target URL of a transfer queue's name, or None for any other queue."""
    if not is_xfer_queue_name(name):
        return None
    target = name.removesuffix(XFER_QUEUE_SUFFIX)
    return target if target.startswith(("http://", "https://")) else None
