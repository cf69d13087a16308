"""kumo.crypto.aws_sign_v4 from Lua policies, against AWS's published Signature Version 4
test suite and the examples of KumoMTA's reference page."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from .support import Recorder, load, make_runtime

# AWS's test suite: credentials, region, service and time shared by every request.
AWS_SUITE = {
    "access_key": {"key_data": "AKIDEXAMPLE"},
    "secret_key": {"key_data": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
    "region": "us-east-1",
    "service": "service",
    "timestamp": "2015-08-30T12:36:00Z",
}
HOST = {"host": "example.amazonaws.com"}
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# name: (method, uri, query_params, extra headers, payload, signed headers, signature)
VECTORS: dict[str, tuple[str, str, dict[str, str], dict[str, str], str, str, str]] = {
    "get-vanilla": (
        "GET",
        "/",
        {},
        {},
        "",
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    "post-vanilla": (
        "POST",
        "/",
        {},
        {},
        "",
        "host;x-amz-date",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    "get-vanilla-query-order-key-case": (
        "GET",
        "/",
        {"Param2": "value2", "Param1": "value1"},
        {},
        "",
        "host;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    "get-vanilla-query-unreserved": (
        "GET",
        "/",
        {UNRESERVED: UNRESERVED},
        {},
        "",
        "host;x-amz-date",
        "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    ),
    "get-vanilla-utf8-query": (
        "GET",
        "/",
        {"\u1234": "bar"},
        {},
        "",
        "host;x-amz-date",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    "post-vanilla-query-nonunreserved": (
        "POST",
        "/",
        {"@#$%^": "", "+": '/,?><`";:\\|][{}'},
        {},
        "",
        "host;x-amz-date",
        "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e",
    ),
    "get-unreserved": (
        "GET",
        "/" + UNRESERVED,
        {},
        {},
        "",
        "host;x-amz-date",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    "get-utf8": (
        "GET",
        "/\u1234",
        {},
        {},
        "",
        "host;x-amz-date",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    "get-header-value-trim": (
        "GET",
        "/",
        {},
        {"My-Header1": " value1", "My-Header2": ' "a   b   c"'},
        "",
        "host;my-header1;my-header2;x-amz-date",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    "post-header-key-sort": (
        "POST",
        "/",
        {},
        {"My-Header1": "value1"},
        "",
        "host;my-header1;x-amz-date",
        "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    ),
    "post-header-value-case": (
        "POST",
        "/",
        {},
        {"My-Header1": "VALUE1"},
        "",
        "host;my-header1;x-amz-date",
        "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    ),
    "post-x-www-form-urlencoded": (
        "POST",
        "/",
        {},
        {"Content-Type": "application/x-www-form-urlencoded"},
        "Param1=value1",
        "content-type;host;x-amz-date",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
}


async def sign(tmp_path: Path, params: dict[str, Any]) -> Any:
    """``kumo.crypto.aws_sign_v4(params)`` called by a Lua policy; the result or error."""
    recorder = Recorder()
    recorder.value = params
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local ok, result = pcall(kumo.crypto.aws_sign_v4, kumo.test.value())
        kumo.test.mark(ok and result or tostring(result))
    """,
        recorder=recorder,
    )
    return recorder.marks[0]


@pytest.mark.parametrize("name", sorted(VECTORS))
async def test_aws_signature_v4_test_suite(tmp_path: Path, name: str) -> None:
    method, uri, query, headers, payload, signed, signature = VECTORS[name]
    result = await sign(
        tmp_path,
        {
            **AWS_SUITE,
            "method": method,
            "uri": uri,
            "query_params": query,
            "headers": {**HOST, **headers},
            "payload": payload,
        },
    )
    assert result["signature"] == signature
    assert result["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    assert result["timestamp"] == "20150830T123600Z"


async def test_get_vanilla_canonical_request_and_string_to_sign(tmp_path: Path) -> None:
    result = await sign(tmp_path, {**AWS_SUITE, "method": "GET", "uri": "/", "headers": HOST})
    assert result["canonical_request"] == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert result["string_to_sign"] == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )
    # Host in any case, and the time as a kumo.time value, sign the same request.
    recorder = Recorder()
    recorder.value = {
        **AWS_SUITE,
        "method": "GET",
        "uri": "/",
        "headers": {"Host": "example.amazonaws.com"},
    }
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local params = kumo.test.value()
        params.timestamp = kumo.time.parse_rfc3339 '2015-08-30T14:36:00+02:00'
        kumo.test.mark(kumo.crypto.aws_sign_v4(params).signature)
    """,
        recorder=recorder,
    )
    assert recorder.marks == ["5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"]


async def test_session_token_and_s3_payload_hash_are_signed(tmp_path: Path) -> None:
    sts = await sign(
        tmp_path,
        {
            **AWS_SUITE,
            "service": "sts",
            "method": "GET",
            "uri": "/",
            "headers": HOST,
            "session_token": "AQoDYXdzEJr...",
        },
    )
    assert "\nx-amz-security-token:AQoDYXdzEJr...\n" in sts["canonical_request"]
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in sts["authorization"]
    s3 = await sign(
        tmp_path,
        {
            **AWS_SUITE,
            "service": "s3",
            "method": "PUT",
            "uri": "/bucket/my key.txt",
            "headers": HOST,
            "payload": "hi",
        },
    )
    digest = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"  # sha256 'hi'
    assert s3["canonical_request"].startswith("PUT\n/bucket/my%20key.txt\n\n")
    assert f"\nx-amz-content-sha256:{digest}\n" in s3["canonical_request"]
    assert s3["canonical_request"].endswith(f"\nhost;x-amz-content-sha256;x-amz-date\n{digest}")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"headers": {}}, "headers must include 'host'"),
        ({"region": None}, "missing field 'region'"),
        ({"url": "https://example.com/"}, "unknown field 'url'"),
        ({"method": 1}, "method must be a string, got number"),
        ({"timestamp": "yesterday"}, "timestamp must be an RFC 3339 time with a zone"),
        ({"query_params": {"a": {"b": "c"}}}, "query_params.a must be a string, got table"),
        (
            {"secret_key": {"vault_path": "aws"}},
            "secret_key: a HashiCorp Vault key source needs vault_mount",
        ),
        ({"access_key": {"key_data": b"\xff\xfe"}}, "access_key must be valid UTF-8"),
    ],
)
async def test_refusals_name_the_field(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    params = {**AWS_SUITE, "method": "GET", "uri": "/", "headers": HOST, **change}
    error = await sign(tmp_path, {k: v for k, v in params.items() if v is not None})
    assert isinstance(error, str) and "kumo.crypto.aws_sign_v4" in error and message in error


async def test_keys_from_files_and_binary_key_data(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    recorder = Recorder()
    await load(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local result = kumo.crypto.aws_sign_v4 {{
          access_key = {{ key_data = 'AKIDEXAMPLE' }}, secret_key = '{tmp_path}/secret',
          region = 'us-east-1', service = 'service', method = 'GET', uri = '/',
          headers = {{ host = 'example.amazonaws.com' }}, timestamp = '2015-08-30T12:36:00Z',
        }}
        kumo.test.mark(result.signature)
        kumo.test.mark({{ pcall(kumo.crypto.aws_sign_v4, {{
          access_key = {{ key_data = string.char(0xff) }}, secret_key = 'x', region = 'r',
          service = 's', method = 'GET', uri = '/', headers = {{ host = 'h' }} }}) }})
    """,
        recorder=recorder,
    )
    assert recorder.marks[0] == VECTORS["get-vanilla"][-1]
    ok, error = recorder.marks[1]
    assert not ok and "access_key must be valid UTF-8" in str(error)


async def test_reference_page_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # KumoMTA's S3, SNS, Kinesis and Lambda examples, up to the signature (their
    # `http.request` calls are illustrations, not functions).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    recorder = Recorder()
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local result = kumo.crypto.aws_sign_v4 {
          access_key = { key_data = 'AKIAIOSFODNN7EXAMPLE' },
          secret_key = { key_data = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
          region = 'us-east-1', service = 's3', method = 'GET',
          uri = '/my-bucket/my-object.txt', query_params = {},
          headers = { host = 'my-bucket.s3.amazonaws.com' }, payload = '',
        }
        kumo.test.mark(result)

        local body =
          'Action=Publish&Message=Hello&TopicArn=arn:aws:sns:us-east-1:123456789012:MyTopic'
        kumo.test.mark(kumo.crypto.aws_sign_v4 {
          access_key = { key_data = 'AKIAIOSFODNN7EXAMPLE' },
          secret_key = { key_data = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
          region = 'us-east-1', service = 'sns', method = 'POST', uri = '/',
          headers = { host = 'sns.us-east-1.amazonaws.com',
                      ['content-type'] = 'application/x-www-form-urlencoded' },
          payload = body,
        }.authorization)

        local payload = kumo.serde.json_encode {
          StreamName = 'my-stream', PartitionKey = 'example-partition',
          Data = kumo.encode.base64_encode 'Hello from KumoMTA',
        }
        kumo.test.mark(kumo.crypto.aws_sign_v4 {
          access_key = { key_data = os.getenv 'AWS_ACCESS_KEY_ID' },
          secret_key = { key_data = os.getenv 'AWS_SECRET_ACCESS_KEY' },
          region = 'us-east-1', service = 'kinesis', method = 'POST', uri = '/',
          headers = { host = 'kinesis.us-east-1.amazonaws.com',
                      ['content-type'] = 'application/x-amz-json-1.1',
                      ['x-amz-target'] = 'Kinesis_20131202.PutRecord' },
          payload = payload,
        }.authorization)

        local function_name = 'my-function'
        kumo.test.mark(kumo.crypto.aws_sign_v4 {
          access_key = { key_data = os.getenv 'AWS_ACCESS_KEY_ID' },
          secret_key = { key_data = os.getenv 'AWS_SECRET_ACCESS_KEY' },
          region = 'us-east-1', service = 'lambda', method = 'POST',
          uri = ('/2015-03-31/functions/%s/invocations'):format(function_name),
          headers = { host = 'lambda.us-east-1.amazonaws.com',
                      ['content-type'] = 'application/json' },
          payload = kumo.serde.json_encode { key = 'value' },
        }.canonical_request)
    """,
        recorder=recorder,
    )
    after = dt.datetime.now(dt.UTC)
    s3, sns, kinesis, lambda_request = recorder.marks
    assert set(s3) == {
        "authorization",
        "timestamp",
        "signature",
        "canonical_request",
        "string_to_sign",
    }
    when = dt.datetime.strptime(s3["timestamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert before <= when <= after  # no timestamp given: now
    date = s3["timestamp"][:8]
    assert re.fullmatch(r"[0-9a-f]{64}", s3["signature"])
    assert s3["authorization"] == (
        f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{date}/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={s3['signature']}"
    )
    assert s3["string_to_sign"].startswith(
        f"AWS4-HMAC-SHA256\n{s3['timestamp']}\n{date}/us-east-1/s3/aws4_request\n"
    )
    assert f"/{date}/us-east-1/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date," in sns
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-target," in kinesis
    assert lambda_request.startswith(
        "POST\n/2015-03-31/functions/my-function/invocations\n\n"
        "content-type:application/json\n"
        "host:lambda.us-east-1.amazonaws.com\n"
    )


def test_python_policies_sign_with_keywords() -> None:
    result = make_runtime().kumo.crypto.aws_sign_v4(
        **AWS_SUITE, method="POST", uri="/", headers=HOST
    )
    assert result["signature"] == VECTORS["post-vanilla"][-1]
