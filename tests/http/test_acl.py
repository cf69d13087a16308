"""HTTP access control (KumoMTA's ``kumo.aaa``) on a real listener: the product default
ACL, a policy's ``get_acl_definition``, explicit Deny rules, per-listener resources."""

from __future__ import annotations

import base64

from kumocore import hookimpl
from kumocore.http.acl import AccessControlList
from kumocore.http.acl_map import make_access_control_list, parse_acl_map
from kumocore.node.cache_capacity import TtlCache
from tests.http.conftest import HttpEnv, StartHttp

UNTRUSTED = "127.0.0.5"
SUMMARY = "/api/admin/queue-summary/v1"
BODY = {
    "envelope_sender": "a@sender.example",
    "recipients": [{"email": "b@example.com"}],
    "content": "Subject: x\n\ny",
}

#: One user, one endpoint: ``ops`` may read the queue summary, nothing else of the admin API.
OPS_MAP = parse_acl_map("""
[[acl."http_listener/*/api/admin/queue-summary"]]
allow = true
privileges = ["GET"]
identity.Individual = "ops"
""")


def basic(user: str, password: str = "pw") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Policy:
    """Accepts any Basic password "pw"; answers ACLs from ``acls`` (resource -> ACL)."""

    def __init__(
        self, acls: dict[str, AccessControlList] | None = None, acl_map: object = None
    ) -> None:
        self.acls = {} if acls is None else acls
        self.acl_map = acl_map
        self.asked: list[str] = []

    @hookimpl
    def kumo_http_server_validate_auth_basic(self, user: str, password: str) -> bool:
        return password == "pw"

    @hookimpl
    def kumo_get_acl_definition(self, resource: str) -> AccessControlList | None:
        self.asked.append(resource)
        if self.acl_map is not None:
            return OPS_MAP.get(resource)
        return self.acls.get(resource)


async def test_default_acl_lets_trusted_hosts_read_admin_and_refuses_others(
    start_http: StartHttp,
) -> None:
    env = await start_http(Policy())
    assert (await env.request("GET", SUMMARY))[0] == 200
    status, text, _ = await env.request("GET", SUMMARY, source=UNTRUSTED, headers=basic("ops"))
    assert (status, text) == (401, f"{UNTRUSTED} not permitted GET on {SUMMARY}")


async def test_an_acl_map_grants_one_user_one_endpoint(start_http: StartHttp) -> None:
    env = await start_http(Policy(acl_map=OPS_MAP))
    status, body, _ = await env.request("GET", SUMMARY, source=UNTRUSTED, headers=basic("ops"))
    assert status == 200 and isinstance(body, dict)
    for user, path in (("other", SUMMARY), ("ops", "/metrics"), ("ops", "/api/admin/bounce/v1")):
        status, text, _ = await env.request("GET", path, source=UNTRUSTED, headers=basic(user))
        assert (status, text) == (401, f"{UNTRUSTED} not permitted GET on {path}"), (user, path)
    # The grant is GET only: POST is not a privilege ops holds.
    status, text, _ = await env.request(
        "POST", SUMMARY, source=UNTRUSTED, json={}, headers=basic("ops")
    )
    assert (status, text) == (401, f"{UNTRUSTED} not permitted POST on {SUMMARY}")


async def test_an_explicit_deny_rule_overrides_the_default_and_says_denied(
    start_http: StartHttp,
) -> None:
    deny = make_access_control_list(
        [
            {
                "criteria": {"Identity": {"Group": "kumomta:http-listener-trusted-ip"}},
                "privilege": "GET",
                "access": "Deny",
            }
        ]
    )
    env = await start_http(Policy({"http_listener/*/metrics": deny}))
    status, text, _ = await env.request("GET", "/metrics")
    assert (status, text) == (401, "127.0.0.1 denied GET on /metrics")
    assert (await env.request("GET", "/metrics.json"))[0] == 200  # its own resource


async def test_resources_name_the_listeners_local_address_first(start_http: StartHttp) -> None:
    policy = Policy()
    env = await start_http(policy)
    # The node's own listener may have asked for the same wildcard names already.
    control = env.reception.runtime.http_access
    control.acl_cache_ttl = 0
    control.definitions = TtlCache(128)
    policy.asked.clear()
    await env.request("GET", SUMMARY)
    host, port = env.listener.address
    local = f"http_listener/{host}:{port}"
    assert policy.asked == [
        f"{local}/api/admin/queue-summary/v1",
        f"{local}/api/admin/queue-summary",
        f"{local}/api/admin",
        f"{local}/api",
        local,
        "http_listener/*/api/admin/queue-summary/v1",
        "http_listener/*/api/admin/queue-summary",
        "http_listener/*/api/admin",
    ]  # the default map decides at http_listener/*/api/admin


async def test_a_rule_on_one_listener_address_does_not_apply_to_another(
    start_http: StartHttp,
) -> None:
    allow_untrusted = make_access_control_list(
        [{"criteria": {"Identity": {"Machine": UNTRUSTED}}, "privilege": "GET", "access": "Allow"}]
    )
    acls: dict[str, AccessControlList] = {}
    env = await start_http(Policy(acls))
    other = await start_http(Policy(acls))
    host, port = env.listener.address
    acls[f"http_listener/{host}:{port}/metrics"] = allow_untrusted
    assert (await env.request("GET", "/metrics", source=UNTRUSTED))[0] == 200
    assert (await other.request("GET", "/metrics", source=UNTRUSTED))[0] == 401


async def test_decisions_are_cached_per_session_and_resource(start_http: StartHttp) -> None:
    policy = Policy()
    env = await start_http(policy)
    await env.request("GET", SUMMARY)
    asked = len(policy.asked)
    await env.request("GET", SUMMARY)
    await env.request("GET", SUMMARY)
    assert len(policy.asked) == asked  # the check cache answered


async def test_a_wrong_answer_from_get_acl_definition_gets_500(start_http: StartHttp) -> None:
    class Wrong:
        @hookimpl
        def kumo_get_acl_definition(self, resource: str) -> object:
            # A table, not kumo.aaa.make_access_control_list (for /metrics only: the
            # node's own start-up calls its admin API).
            return {"rules": []} if "metrics" in resource else None

    env = await start_http(Wrong())
    status, text, _ = await env.request("GET", "/metrics")
    assert (status, text) == (500, "try again later")


async def test_auth_info_table_from_basic_auth_adds_groups(start_http: StartHttp) -> None:
    class Groups:
        @hookimpl
        def kumo_http_server_validate_auth_basic(self, user: str, password: str) -> object:
            if password != "pw":
                return False
            # KumoMTA: the returned table lists the identities; the user name is not added.
            who = [{"identity": user, "context": "HttpBasicAuth"}] if user == "a" else []
            return {"identities": who, "groups": ["admins"]}

        @hookimpl
        def kumo_get_acl_definition(self, resource: str) -> AccessControlList | None:
            if resource != "http_listener/*/metrics":
                return None
            return make_access_control_list(
                [
                    {
                        "criteria": {
                            "AllOf": [
                                {"Identity": {"Group": "admins"}},
                                {"Identity": "Authenticated"},
                            ]
                        },
                        "privilege": "GET",
                        "access": "Allow",
                    }
                ]
            )

    env = await start_http(Groups())
    assert (await env.request("GET", "/metrics", source=UNTRUSTED, headers=basic("a")))[0] == 200
    assert (await env.request("GET", "/metrics", source=UNTRUSTED))[0] == 401
    # In the group but without an identity: not Authenticated.
    assert (await env.request("GET", "/metrics", source=UNTRUSTED, headers=basic("b")))[0] == 401


async def test_trusted_host_still_gets_404_for_an_unknown_path(http: HttpEnv) -> None:
    assert (await http.request("GET", "/no/such/path"))[0] == 404
    status, text, _ = await http.request("GET", "/no/such/path", source=UNTRUSTED)
    assert (status, text) == (401, f"{UNTRUSTED} not permitted GET on /no/such/path")


async def test_authenticated_user_may_inject_by_default(start_http: StartHttp) -> None:
    env = await start_http(Policy())
    status, _ = await env.inject(BODY, source=UNTRUSTED, headers=basic("api"))
    assert status == 200
    status, text, _ = await env.request(
        "POST", "/api/inject/v1", json=BODY, source=UNTRUSTED, headers=basic("api", "bad")
    )
    assert (status, text) == (401, "HttpBasicAuth Authentication Failed for api")


async def test_a_trusted_host_with_wrong_credentials_is_refused(start_http: StartHttp) -> None:
    # KumoMTA checks an Authorization header whoever sends it (kumocore ignored it
    # from trusted hosts before the ACL).
    env = await start_http(Policy())
    status, text, _ = await env.request("GET", SUMMARY, headers=basic("ops", "bad"))
    assert (status, text) == (401, "HttpBasicAuth Authentication Failed for ops")
    assert (await env.request("GET", SUMMARY, headers=basic("ops")))[0] == 200


async def test_made_up_paths_from_untrusted_peers_do_not_ask_the_policy(
    start_http: StartHttp,
) -> None:
    policy = Policy()
    env = await start_http(policy)
    policy.asked.clear()
    for i in range(5):
        path = f"/x{i}/" + "/".join("abcdefghij")  # 22 resource names each
        status, text, _ = await env.request("GET", path, source=UNTRUSTED, headers=basic("u"))
        assert (status, text) == (401, f"{UNTRUSTED} not permitted GET on {path}")
    assert policy.asked == []


class Bearer:
    @hookimpl
    def kumo_http_server_validate_auth_bearer(self, token: str) -> object:
        if token != "t0k":
            return False
        return {"identities": [{"identity": "svc", "context": "BearerToken"}]}


async def test_bearer_token_accepted_by_the_policy_may_inject(start_http: StartHttp) -> None:
    env = await start_http(Bearer())
    status, _ = await env.inject(BODY, source=UNTRUSTED, headers={"Authorization": "Bearer t0k"})
    assert status == 200
    assert env.messages[0].meta["http_auth"] == "svc"
    status, text, _ = await env.request(
        "POST",
        "/api/inject/v1",
        json=BODY,
        source=UNTRUSTED,
        headers={"Authorization": "Bearer nope"},
    )
    assert (status, text) == (401, "BearerToken Authentication Failed for ")
    # Admin stays with trusted hosts: a token holder is only Authenticated.
    status, _, _ = await env.request(
        "GET", SUMMARY, source=UNTRUSTED, headers={"Authorization": "Bearer t0k"}
    )
    assert status == 401
