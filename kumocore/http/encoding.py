"""Compressed request bodies (``Content-Encoding``), decoded within the body limit.

aiohttp's own decoding inflates a body as it arrives, on the event loop, before anyone
has asked whether the body is wanted: a client that is refused (``401``) still had each
1 MB gzip body of zeros inflated to 1 GiB, and sixteen of them stalled every other client
for seconds (a decompression bomb; OWASP's denial-of-service cheat sheet). The listener
therefore takes bodies as sent, and only a request that passed the access rules gets its
body decoded, here: in a worker thread, and never past ``request_body_limit`` bytes of
output (``413``), as the limit is documented to count the decoded body.
"""

from __future__ import annotations

import zlib

__all__ = ["ENCODINGS", "BodyEncodingError", "BodyTooLarge", "UnsupportedEncoding",
           "decode_body"]

#: Content-Encoding values taken (RFC 9110 8.4.1), with the zlib window bits that read
#: them: gzip's header and trailer, or deflate's zlib wrapper (32 + 15 accepts both).
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
             "deflate": 32 + zlib.MAX_WBITS}


class BodyEncodingError(ValueError):
    """The body does not decode (``400``)."""


class UnsupportedEncoding(BodyEncodingError):
    """The body's encoding is not one kumocore takes (``415``)."""


class BodyTooLarge(ValueError):
    """The decoded body would be larger than the limit."""


def decode_body(raw: bytes, content_encoding: str, limit: int) -> bytes:
    """``raw`` decoded as ``content_encoding`` says, at most ``limit`` bytes of it.

    Decoding stops one byte past ``limit``, so the work is bounded by the limit, not by
    what the sender packed into the body.
    """
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return raw
    if len(codings) > 1 or codings[0] not in ENCODINGS:
        raise UnsupportedEncoding(
            f"Content-Encoding {content_encoding!r} is not supported (one of "
            f"{', '.join(sorted(ENCODINGS))}, or none)")
    inflater = zlib.decompressobj(ENCODINGS[codings[0]])
    try:
        decoded = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BodyEncodingError(f"the {codings[0]} body does not decode: {exc}") from None
    if len(decoded) > limit:
        raise BodyTooLarge(f"the decoded body is larger than {limit} bytes")
    if not inflater.eof:
        raise BodyEncodingError(f"the {codings[0]} body is truncated")
    return decoded
