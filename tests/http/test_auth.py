"""Who may call what: trusted hosts, HTTP Basic auth through the policy, admin paths."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kumocore import hookimpl
from tests.http.conftest import HttpEnv, StartHttp

UNTRUSTED = "127.0.0.5"
BODY = {"envelope_sender": "a@sender.example", "recipients": [{"email": "b@example.com"}],
        "content": "Subject: x\n\ny"}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class BasicAuth:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def kumo_http_server_validate_auth_basic(self, user: str, password: str) -> bool:
        self.calls.append((user, password))
        return (user, password) == ("api", "letmein")


async def test_untrusted_peer_without_credentials_gets_401(http: HttpEnv) -> None:
    status, text, _ = await http.request("POST", "/api/inject/v1", json=BODY, source=UNTRUSTED)
    assert (status, text) == (401, "127.0.0.5 not permitted POST on /api/inject/v1")
    assert http.messages == []


async def test_basic_auth_validated_by_the_policy_may_inject(start_http: StartHttp) -> None:
    policy = BasicAuth()
    env = await start_http(policy)
    status, body = await env.inject(BODY, source=UNTRUSTED,
                                    headers=basic("api", "letmein"))
    assert status == 200 and body["success_count"] == 1
    assert policy.calls == [("api", "letmein")]
    meta = env.messages[0].meta
    assert meta["http_auth"] == "api"
    assert meta["received_from"] == UNTRUSTED


async def test_wrong_basic_credentials_get_401(start_http: StartHttp) -> None:
    env = await start_http(BasicAuth())
    status, text, _ = await env.request("POST", "/api/inject/v1", json=BODY, source=UNTRUSTED,
                                        headers=basic("api", "guess"))
    assert (status, text) == (401, "HttpBasicAuth Authentication Failed for api")


async def test_without_an_auth_policy_basic_credentials_are_refused(http: HttpEnv) -> None:
    status, _, _ = await http.request("POST", "/api/inject/v1", json=BODY, source=UNTRUSTED,
                                      headers=basic("api", "letmein"))
    assert status == 401


async def test_malformed_authorization_header_gets_400(http: HttpEnv) -> None:
    for header in ("Bearer abc", "Basic ***"):
        status, text, _ = await http.request(
            "POST", "/api/inject/v1", json=BODY, source=UNTRUSTED,
            headers={"Authorization": header})
        assert (status, text) == (400, "Malformed or unsupported Authorization header")


@pytest.mark.parametrize("path", ["/api/check-liveness/v1", "/api-docs/openapi.json"])
async def test_liveness_and_docs_are_open_to_anyone(http: HttpEnv, path: str) -> None:
    status, _, _ = await http.request("GET", path, source=UNTRUSTED)
    assert status == 200


@pytest.mark.parametrize("path", ["/api/admin/queue-summary/v1", "/metrics"])
async def test_admin_and_metrics_are_trusted_hosts_only(start_http: StartHttp, path: str) -> None:
    env = await start_http(BasicAuth())
    status, text, _ = await env.request("GET", path, source=UNTRUSTED,
                                        headers=basic("api", "letmein"))
    assert (status, text) == (401, f"127.0.0.5 not permitted GET on {path}")
    status, _, _ = await env.request("GET", path)
    assert status != 401


async def test_trusted_hosts_can_be_replaced(start_http: StartHttp) -> None:
    env = await start_http(trusted_hosts=["127.0.0.0/30"])
    assert (await env.inject(BODY, source="127.0.0.2"))[0] == 200
    assert (await env.inject(BODY, source=UNTRUSTED))[0] == 401


class AuthInfoSeen:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    @hookimpl
    def kumo_http_server_validate_auth_basic(self, user: str, password: str) -> bool:
        return True

    @hookimpl
    def kumo_http_message_generated(self, message: Any, auth_info: dict[str, Any]) -> None:
        self.seen.append(auth_info)


async def test_http_message_generated_receives_auth_info(start_http: StartHttp) -> None:
    policy = AuthInfoSeen()
    env = await start_http(policy)
    await env.inject(BODY)
    await env.inject(BODY, source=UNTRUSTED, headers=basic("carol", "pw"))
    assert policy.seen == [
        {"peer_address": "127.0.0.1", "trusted": True, "user": None},
        {"peer_address": UNTRUSTED, "trusted": False, "user": "carol"},
    ]


class BrokenAuth:
    @hookimpl
    def kumo_http_server_validate_auth_basic(self, user: str, password: str) -> bool:
        raise RuntimeError("ldap is down")


async def test_failing_auth_policy_gets_500(start_http: StartHttp) -> None:
    env = await start_http(BrokenAuth())
    status, text, _ = await env.request("POST", "/api/inject/v1", json=BODY, source=UNTRUSTED,
                                        headers=basic("api", "letmein"))
    assert (status, text) == (500, "try again later")
