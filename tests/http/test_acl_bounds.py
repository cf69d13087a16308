"""The ACL model's parts and bounds: resource names, the map syntax, the default map,
map size, rule count, criteria nesting, auth info size, and the two caches."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from kumocore import ConfigError
from kumocore.auth_info import MAX_AUTH_ENTRIES, AclAuthInfo, parse_auth_info
from kumocore.http.acl import MAX_CRITERIA_DEPTH, MAX_TERMS, AccessControlList
from kumocore.http.acl_check import CACHE_CAPACITY, AccessControl
from kumocore.http.acl_map import (
    DEFAULT_ACL_MAP,
    MAX_ACL_MAP_BYTES,
    MAX_ACL_RULES,
    load_acl_map,
    make_access_control_list,
    parse_acl_map,
)
from kumocore.http.acl_resource import (
    MAX_ACL_PATH_COMPONENTS,
    MAX_ACL_PATH_LEN,
    make_http_url_resource,
)
from tests.support.fifo import late_writer_fifo

TRUSTED = AclAuthInfo(ipaddress.ip_address("127.0.0.1"), (), ("kumomta:http-listener-trusted-ip",))
NOBODY = AclAuthInfo(ipaddress.ip_address("127.0.0.5"))
ENTRY = '[[acl."http_listener/*/x"]]\nallow = true\nprivileges = ["GET"]\nidentity.Any = {}\n'


def rule(criteria: object, privilege: str = "GET", access: str = "Allow") -> dict[str, object]:
    return {"criteria": criteria, "privilege": privilege, "access": access}


def test_url_resource_walks_names_as_kumomta_documents() -> None:
    resource = make_http_url_resource("127.0.0.1:8080", "https://localhost/foo/bar/baz")
    assert resource.candidates == (
        "http_listener/127.0.0.1:8080/foo/bar/baz",
        "http_listener/127.0.0.1:8080/foo/bar",
        "http_listener/127.0.0.1:8080/foo",
        "http_listener/127.0.0.1:8080",
        "http_listener/*/foo/bar/baz",
        "http_listener/*/foo/bar",
        "http_listener/*/foo",
        "http_listener",
    )
    assert resource.resource_id == "http_listener/127.0.0.1:8080/foo/bar/baz"
    v6 = make_http_url_resource("[::1]:8000", "http://h/api")
    assert v6.resource_id == "http_listener/[::1]:8000/api"


def test_url_resource_uses_a_bounded_part_of_a_long_path() -> None:
    deep = make_http_url_resource("127.0.0.1:1", "http://h/" + "/".join("abcdefghijklmnop"))
    # 10 components with the address, 10 without, the bare address, the root.
    assert len(deep.candidates) == 2 * MAX_ACL_PATH_COMPONENTS + 2
    assert deep.resource_id.endswith("/a/b/c/d/e/f/g/h/i/j")
    long = make_http_url_resource("127.0.0.1:1", "http://h/" + "x" * 1000)
    assert long.resource_id == "http_listener/127.0.0.1:1/" + "x" * (MAX_ACL_PATH_LEN - 1)


def test_make_http_url_resource_refuses_bad_arguments() -> None:
    for addr, url in (("localhost", "http://h/x"), ("127.0.0.1:1", "/relative")):
        with pytest.raises(ConfigError):
            make_http_url_resource(addr, url)


def test_default_map_has_kumomtas_grants() -> None:
    def allows(path: str, info: AclAuthInfo, privilege: str) -> bool:
        acl = DEFAULT_ACL_MAP.get(f"http_listener/*/{path}")
        found = acl.decide(info, privilege) if acl is not None else None
        return found is not None and found.allow

    user = AclAuthInfo(None, (parse_auth_info({"identities": [{"identity": "u"}]}).identities))
    assert allows("api/check-liveness", NOBODY, "GET")
    assert allows("api/inject", TRUSTED, "POST") and allows("api/inject", user, "POST")
    assert not allows("api/inject", NOBODY, "POST")
    for privilege in ("GET", "POST", "DELETE"):
        assert allows("api/admin", TRUSTED, privilege)
        assert not allows("api/admin", user, privilege)
    assert not allows("api/admin", TRUSTED, "PUT")
    for path in ("metrics", "metrics.json", "api/machine-info", "status"):
        assert allows(path, TRUSTED, "GET") and not allows(path, user, "GET")


def test_map_syntax_expands_privileges_and_refuses_mistakes() -> None:
    acl_map = parse_acl_map(ENTRY.replace('["GET"]', '["GET", "PUT"]'))
    acl = acl_map.get("http_listener/*/x")
    assert acl is not None and [r.privilege for r in acl.rules] == ["GET", "PUT"]
    for bad in (
        ENTRY + "extra = 1\n",
        ENTRY.replace("identity.Any", "criteria.Any"),
        ENTRY + 'criteria.Not = {Identity = "Any"}\n',
        "[other]\n",
        ENTRY.replace("true", '"yes"'),
        "not toml =",
    ):
        with pytest.raises(ConfigError):
            parse_acl_map(bad)


def test_criteria_combine_and_match() -> None:
    acl = make_access_control_list(
        [
            rule({"Not": {"Identity": {"MachineSet": ["10.0.0.0/8"]}}}, access="Deny"),
            rule({"AnyOf": [{"Identity": {"Group": "g"}}, {"Identity": {"Machine": "10.1.2.3"}}]}),
        ]
    )
    assert acl.decide(NOBODY, "GET") is not None and not acl.decide(NOBODY, "GET").allow  # type: ignore[union-attr]
    inside = AclAuthInfo(ipaddress.ip_address("10.1.2.3"))
    assert acl.decide(inside, "GET").allow  # type: ignore[union-attr]
    assert acl.decide(AclAuthInfo(ipaddress.ip_address("10.9.9.9")), "GET") is None
    assert acl.rules[0].to_dict() == rule(
        {"Not": {"Identity": {"MachineSet": ["10.0.0.0/8"]}}}, access="Deny"
    )


def test_map_file_larger_than_the_bound_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acl.toml"
    path.write_text(ENTRY + "#" * (MAX_ACL_MAP_BYTES - len(ENTRY) - 1) + "\n")
    assert load_acl_map(str(path)).get("http_listener/*/x") is not None  # exactly the limit
    path.write_text(ENTRY + "#" * (MAX_ACL_MAP_BYTES - len(ENTRY)) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_acl_map(str(path))
    with pytest.raises(ConfigError, match="larger than"):
        load_acl_map({"key_data": ENTRY + "#" * MAX_ACL_MAP_BYTES})


def test_map_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    with (
        late_writer_fifo(tmp_path / "acl.toml", ENTRY.encode()) as fifo,
        pytest.raises(ConfigError, match="not a regular file"),
    ):
        load_acl_map(str(fifo))
    with pytest.raises(ConfigError, match="not a regular file"):
        load_acl_map("/dev/null")


def test_rule_count_is_bounded() -> None:
    one = rule({"Identity": "Any"})
    assert len(make_access_control_list([one] * MAX_ACL_RULES).rules) == MAX_ACL_RULES
    with pytest.raises(ConfigError, match="at most"):
        make_access_control_list([one] * (MAX_ACL_RULES + 1))
    privileges = ", ".join(f'"P{i}"' for i in range(MAX_ACL_RULES + 1))
    with pytest.raises(ConfigError, match="more than"):
        parse_acl_map(ENTRY.replace('"GET"', privileges))


def test_criteria_nesting_and_width_are_bounded() -> None:
    def nested(depth: int) -> object:
        term: object = {"Identity": "Any"}
        for _ in range(depth):
            term = {"Not": term}
        return term

    make_access_control_list([rule(nested(MAX_CRITERIA_DEPTH))])
    with pytest.raises(ConfigError, match="nested"):
        make_access_control_list([rule(nested(MAX_CRITERIA_DEPTH + 1))])
    with pytest.raises(ConfigError, match="at most"):
        make_access_control_list([rule({"AnyOf": [{"Identity": "Any"}] * (MAX_TERMS + 1)})])


def test_auth_info_size_is_bounded() -> None:
    groups = [f"g{i}" for i in range(MAX_AUTH_ENTRIES)]
    assert len(parse_auth_info({"groups": groups}).groups) == MAX_AUTH_ENTRIES
    with pytest.raises(ConfigError, match="at most"):
        parse_auth_info({"groups": [*groups, "one more"]})
    with pytest.raises(ConfigError, match="context"):
        parse_auth_info({"identities": [{"identity": "u", "context": "Telepathy"}]})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counting_control(clock: Clock) -> tuple[AccessControl, list[str]]:
    asked: list[str] = []

    async def provider(resource: str) -> tuple[bool, AccessControlList | None]:
        asked.append(resource)
        return True, None

    return AccessControl(provider, clock), asked


async def test_caches_hold_at_most_their_capacity() -> None:
    control, asked = counting_control(Clock())
    first = make_http_url_resource("127.0.0.1:1", "http://h/r0")
    await control.query(first, TRUSTED, "GET")
    for i in range(1, CACHE_CAPACITY * 2):
        await control.query(make_http_url_resource("127.0.0.1:1", f"http://h/r{i}"), TRUSTED, "GET")
    assert len(control.checks) == CACHE_CAPACITY
    assert len(control.definitions) == CACHE_CAPACITY
    asked.clear()
    await control.query(first, TRUSTED, "GET")  # evicted: asked again
    assert "http_listener/127.0.0.1:1/r0" in asked


async def test_cache_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    control, asked = counting_control(clock)
    control.check_cache_ttl = 10
    control.acl_cache_ttl = 20
    resource = make_http_url_resource("127.0.0.1:1", "http://h/x")
    await control.query(resource, TRUSTED, "GET")
    count = len(asked)
    clock.now = 9.9
    await control.query(resource, TRUSTED, "GET")
    assert len(asked) == count  # the decision is cached
    clock.now = 10.5  # the decision expired, the definitions not yet
    await control.query(resource, TRUSTED, "GET")
    assert len(asked) == count
    clock.now = 40
    await control.query(resource, TRUSTED, "GET")
    assert len(asked) == 2 * count


async def test_fall_back_decides_whether_the_default_map_answers() -> None:
    control, _ = counting_control(Clock())
    resource = make_http_url_resource("127.0.0.1:1", "http://h/api/admin/x")
    assert (await control.query(resource, TRUSTED, "GET")).allow
    control, _ = counting_control(Clock())
    control.fall_back_to_acl_map = False
    assert not (await control.query(resource, TRUSTED, "GET")).allow
