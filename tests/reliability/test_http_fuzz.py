"""Bad HTTP input (issue 9 part 2, peers.md §6 test 19): schemathesis against kumocore's
own OpenAPI document, raw garbage bodies, and header injection through the inject API.
Every request gets a 4xx or a 2xx that the document describes, never a 5xx, and the
server keeps serving both HTTP and SMTP.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.reliability.abuse import http_fuzz, probe, wait_until
from bench.reliability.crash import KumoServer, World, free_port
from tests.reliability.conftest import StartKumo, unique


@pytest.fixture(scope="module")
def http_kumo(start_module_kumo: StartKumo) -> KumoServer:
    return start_module_kumo(http_port=free_port())


def base(server: KumoServer) -> str:
    return f"http://127.0.0.1:{server.spec.http_port}"


def post(
    server: KumoServer, path: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        base(server) + path, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def inject(server: KumoServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, raw = post(server, "/api/inject/v1", json.dumps(body).encode())
    return status, json.loads(raw or b"{}")


def assert_serving(server: KumoServer) -> None:
    assert server.alive, server.log_tail()
    status, _ = post(server, "/api/inject/v1", b"{}")
    assert status == 400
    assert probe(server.port, f"ok.{unique('http-probe')}@crash.test").code == 250


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    http_kumo: KumoServer,
) -> None:
    report = http_fuzz(base(http_kumo), max_examples=20)
    assert report.requests > 100
    assert report.server_errors == 0, report.status
    assert report.failures == {}, report.failures
    assert_serving(http_kumo)


def test_admin_bounce_treats_a_null_domain_as_absent_like_kumomta(http_kumo: KumoServer) -> None:
    # KumoMTA's BounceV1Request fields are optional and kcli sends null for unset ones;
    # the OpenAPI document says so (nullable), and the listener keeps serving.
    status, _ = post(
        http_kumo,
        "/api/admin/bounce/v1",
        json.dumps({"domain": None, "reason": "fuzz", "duration": "1s"}).encode(),
    )
    assert status == 200
    assert_serving(http_kumo)


INJECTION = "x\r\nX-Injected: yes"
INJECTION_CASES = {
    "subject": {"content": {"subject": INJECTION, "text_body": "hi"}},
    "extra header value": {"content": {"text_body": "hi", "headers": {"X-Test": INJECTION}}},
    "extra header name": {"content": {"text_body": "hi", "headers": {INJECTION: "v"}}},
    "from name": {
        "content": {"text_body": "hi", "from": {"email": "a@src.test", "name": INJECTION}}
    },
    "reply-to name": {
        "content": {"text_body": "hi", "reply_to": {"email": "a@src.test", "name": INJECTION}}
    },
    "substitution into subject": {
        "content": {"subject": "{{ s }}", "text_body": "hi"},
        "substitutions": {"s": INJECTION},
    },
    "recipient name": {"content": {"subject": "hi", "text_body": "hi"}, "name": INJECTION},
    "bare LF in subject": {"content": {"subject": "x\nX-Injected: yes", "text_body": "hi"}},
}


@pytest.mark.parametrize("case", list(INJECTION_CASES))
def test_cr_lf_in_inject_fields_never_becomes_a_header_line(
    http_kumo: KumoServer, world: World, case: str
) -> None:
    spec = dict(INJECTION_CASES[case])
    rcpt = f"ok.{unique('inj')}@crash.test"
    recipient: dict[str, Any] = {"email": rcpt}
    if "name" in spec:
        recipient["name"] = spec.pop("name")
    status, answer = inject(
        http_kumo, {"envelope_sender": "a@src.test", "recipients": [recipient], **spec}
    )
    assert status in (200, 400), (status, answer)
    if status == 400:
        assert "error" in answer
        return
    if answer.get("fail_count"):  # refused for this recipient
        assert answer.get("success_count") == 0 and "CR or LF" in str(answer["errors"]), answer
        return
    assert answer.get("success_count") == 1, answer
    assert wait_until(lambda: world.sink.recipients()[rcpt] == 1, 10)
    message = next(m for m in world.sink.sink.messages if m.recipient == rcpt)
    headers = message.data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(?im)^X-Injected:", headers), headers


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "content",
                            "envelope_sender",
                            "recipients",
                            "email",
                            "name",
                            "substitutions",
                            "template_dialect",
                            "headers",
                            "subject",
                            "text_body",
                            "attachments",
                            "data",
                            "base64",
                            "trace_headers",
                        ]
                    ),
                    children,
                    max_size=5,
                )
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_garbage_inject_bodies_get_a_4xx_never_a_5xx(http_kumo: KumoServer, body: bytes) -> None:
    status, raw = post(http_kumo, "/api/inject/v1", body)
    assert status < 500, (status, raw[:300])
    if status >= 400:
        assert b"error" in raw


def test_after_http_fuzzing_the_server_still_serves(http_kumo: KumoServer) -> None:
    assert_serving(http_kumo)
