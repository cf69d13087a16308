"""Cross-site "simple" POSTs, foreign Origins and DNS-rebinding Hosts (issue 14, #14).

A web page can make a browser POST ``text/plain`` to a loopback listener without a CORS
preflight, and a rebinding page can name its own domain in ``Host`` while talking to
127.0.0.1. Every state-changing request must be JSON and same-origin, and a request let
in only by ``trusted_hosts`` must name the listener by IP, localhost or its hostname.
"""

from __future__ import annotations

import base64

from kumocore import hookimpl
from tests.http.conftest import HttpEnv, StartHttp
from tests.reception.harness import HOSTNAME

BODY = {"envelope_sender": "a@sender.example", "recipients": [{"email": "b@example.com"}],
        "content": "Subject: x\n\ny"}
RAW = b'{"envelope_sender": "a@sender.example", "recipients": [{"email": "b@example.com"}],' \
      b' "content": "Subject: x\\n\\ny"}'


async def test_text_plain_inject_is_refused_with_415_and_injects_nothing(http: HttpEnv) -> None:
    status, payload, _ = await http.request(
        "POST", "/api/inject/v1", data=RAW, headers={"Content-Type": "text/plain"})
    assert status == 415
    assert payload == {"error": "Content-Type must be application/json, got 'text/plain'"}
    assert http.messages == []


async def test_inject_without_content_type_is_refused_with_415(http: HttpEnv) -> None:
    status, payload, _ = await http.request("POST", "/api/inject/v1", data=RAW,
                                            skip_auto_headers=["Content-Type"])
    assert status == 415 and "application/json" in payload["error"]
    assert http.messages == []


async def test_json_with_a_charset_parameter_is_accepted(http: HttpEnv) -> None:
    status, payload, _ = await http.request(
        "POST", "/api/inject/v1", data=RAW,
        headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 200 and payload["success_count"] == 1


async def test_foreign_origin_is_refused_with_403(http: HttpEnv) -> None:
    status, payload, _ = await http.request(
        "POST", "/api/inject/v1", json=BODY, headers={"Origin": "https://evil.example"})
    assert status == 403 and "cross-origin" in payload["error"]
    assert http.messages == []


async def test_null_origin_is_refused_with_403(http: HttpEnv) -> None:
    status, _, _ = await http.request("POST", "/api/inject/v1", json=BODY,
                                      headers={"Origin": "null"})
    assert status == 403
    assert http.messages == []


async def test_sec_fetch_site_cross_site_is_refused_with_403(http: HttpEnv) -> None:
    status, _, _ = await http.request("POST", "/api/inject/v1", json=BODY,
                                      headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403


async def test_same_origin_is_accepted(http: HttpEnv) -> None:
    host, port = http.listener.address
    status, payload, _ = await http.request(
        "POST", "/api/inject/v1", json=BODY, headers={"Origin": f"http://{host}:{port}"})
    assert status == 200 and payload["success_count"] == 1


async def test_dns_rebinding_host_from_a_trusted_peer_is_refused_with_403(
    http: HttpEnv,
) -> None:
    for method, path, kwargs in (("POST", "/api/inject/v1", {"json": BODY}),
                                 ("GET", "/api/admin/queue-summary/v1", {}),
                                 ("GET", "/metrics", {})):
        status, payload, _ = await http.request(
            method, path, headers={"Host": "rebind.evil.example:8000"}, **kwargs)
        assert status == 403, (path, status)
        assert "DNS rebinding" in payload["error"]
    assert http.messages == []


async def test_host_names_of_the_listener_are_accepted(http: HttpEnv) -> None:
    _, port = http.listener.address
    for host in (f"localhost:{port}", f"{HOSTNAME}:{port}", f"127.0.0.1:{port}",
                 f"[::1]:{port}", HOSTNAME.upper()):
        status, _ = await http.inject(BODY, headers={"Host": host})
        assert status == 200, host


async def test_liveness_answers_whatever_the_host(http: HttpEnv) -> None:
    status, _, _ = await http.request("GET", "/api/check-liveness/v1",
                                      headers={"Host": "lb.example"})
    assert status == 200


class AcceptAll:
    @hookimpl
    def kumo_http_server_validate_auth_basic(self, user: str, password: str) -> bool:
        return True


async def test_basic_auth_is_not_subject_to_the_host_check(start_http: StartHttp) -> None:
    env = await start_http(AcceptAll())
    token = base64.b64encode(b"u:p").decode()
    status, payload = await env.inject(BODY, source="127.0.0.5", headers={
        "Host": "mta.customer.example", "Authorization": f"Basic {token}"})
    assert status == 200 and payload["success_count"] == 1
