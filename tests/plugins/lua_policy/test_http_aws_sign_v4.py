"""``request:aws_sign_v4 { ... }`` on kumo.http requests, checked by a server on 127.0.0.1
that verifies the AWS SigV4 signature of what it receives with its own computation."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest
from aiohttp import web

from .support import Recorder, load

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def verify(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> bool:
    """AWS's own check, written from its SigV4 documentation: rebuild the canonical request
    from the request as received and compare signatures."""
    found = _AUTH.fullmatch(headers.get("Authorization", ""))
    if found is None:
        return False
    names = found["signed"].split(";")
    canonical = "\n".join(
        [
            method,
            path,
            "&".join(
                f"{_encode(k)}={_encode(v)}"
                for k, v in sorted(parse_qsl(query, keep_blank_values=True))
            ),
            *(f"{name}:{' '.join(headers.get(name, '').split())}" for name in names),
            "",
            found["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{found['date']}/{found['region']}/{found['service']}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            headers.get("X-Amz-Date", ""),
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{SECRET}".encode(), found["date"])
    for part in (found["region"], found["service"], "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, found["signature"])


async def _check(request: web.Request) -> web.Response:
    body = await request.read()
    valid = verify(
        request.method,
        request.raw_path.partition("?")[0],
        request.query_string,
        request.headers,
        body,
    )
    match = _AUTH.fullmatch(request.headers.get("Authorization", ""))
    return web.json_response(
        {
            "valid": valid,
            "signed": match["signed"] if match else None,
            "token": request.headers.get("X-Amz-Security-Token"),
            "sha": request.headers.get("X-Amz-Content-Sha256"),
        }
    )


@pytest.fixture
async def aws_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _check)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def _run(tmp_path: Path, base: str, body: str) -> list[object]:
    recorder = Recorder()
    recorder.value = base
    await load(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local base = kumo.test.value()
        local client = kumo.http.build_client {{}}
        local keys = {{ access_key = {{ key_data = 'AKIDEXAMPLE' }},
                       secret_key = {{ key_data = '{SECRET}' }} }}
        local function check(req)
          kumo.test.mark(kumo.serde.json_parse(req:send():text()))
        end
{body}
        client:close()
    """,
        recorder=recorder,
    )
    return recorder.marks


async def test_a_signed_post_verifies_at_the_server(tmp_path: Path, aws_url: str) -> None:
    marks = await _run(
        tmp_path,
        aws_url,
        """\
        local payload = kumo.serde.json_encode { StreamName = 'my-stream' }
        local req = client:post(base .. '/stream/put?b=2&a=x%20y')
        req:header('content-type', 'application/x-amz-json-1.1')
          :header('x-amz-target', 'Kinesis_20131202.PutRecord')
          :body(payload)
          :aws_sign_v4 {
            access_key = keys.access_key, secret_key = keys.secret_key,
            region = 'us-east-1', service = 'kinesis', payload = payload,
            headers = { ['x-amz-target'] = 'Kinesis_20131202.PutRecord',
                        ['content-type'] = 'application/x-amz-json-1.1' },
          }
        check(req)
    """,
    )
    # JSON nulls (no X-Amz-Security-Token, no X-Amz-Content-Sha256) are absent in Lua.
    assert marks == [{"valid": True, "signed": "content-type;host;x-amz-date;x-amz-target"}]


async def test_session_tokens_and_s3_hashes_are_signed_and_sent(
    tmp_path: Path, aws_url: str
) -> None:
    marks = await _run(
        tmp_path,
        aws_url,
        """\
        local req = client:get(base .. '/bucket/key.txt')
        req:aws_sign_v4 { access_key = keys.access_key, secret_key = keys.secret_key,
                          region = 'eu-west-1', service = 's3', session_token = 'tok/en+' }
        check(req)
    """,
    )
    assert marks == [
        {
            "valid": True,
            "signed": "host;x-amz-content-sha256;x-amz-date;x-amz-security-token",
            "token": "tok/en+",
            "sha": hashlib.sha256(b"").hexdigest(),
        }
    ]


async def test_a_body_other_than_the_signed_payload_fails_verification(
    tmp_path: Path, aws_url: str
) -> None:
    # As in KumoMTA the body is not read: what is signed is the payload given.
    marks = await _run(
        tmp_path,
        aws_url,
        """\
        local req = client:put(base .. '/object'):body('sent')
        req:aws_sign_v4 { access_key = keys.access_key, secret_key = keys.secret_key,
                          region = 'us-east-1', service = 'sns', payload = 'signed' }
        check(req)
    """,
    )
    assert marks[0]["valid"] is False  # type: ignore[index]


async def test_bad_parameters_are_errors_naming_the_method(tmp_path: Path) -> None:
    marks = await _run(
        tmp_path,
        "http://127.0.0.1:9/",
        """\
        local req = client:get(base)
        for _, params in ipairs {
          { access_key = keys.access_key, secret_key = keys.secret_key, region = 'r',
            service = 's', method = 'POST' },
          { secret_key = keys.secret_key, region = 'r', service = 's' },
        } do
          local ok, err = pcall(req.aws_sign_v4, req, params)
          kumo.test.mark(tostring(err))
        end
    """,
    )
    assert "HttpRequest:aws_sign_v4" in str(marks[0]) and "unknown field 'method'" in str(marks[0])
    assert "missing field 'access_key'" in str(marks[1])
