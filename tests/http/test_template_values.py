"""Templates cannot grow memory through Python methods of substitution values, and a
rendered template over ``max_rendered_size`` fails its recipient (issue 14, #11)."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import HttpEnv, StartHttp


def request(template: str, **substitutions: Any) -> dict[str, Any]:
    return {"envelope_sender": "a@sender.example", "recipients": [{"email": "b@example.com"}],
            "substitutions": substitutions, "content": {"text_body": template}}


DOUBLING = [
    ("{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}{{ l|length }}", {"l": [1]}),
    ("{% for i in range(40) %}{{ d.update(d) }}{{ d.setdefault('k', []) }}{% endfor %}",
     {"d": {"a": 1}}),
    ("{% set c = d.copy() %}{{ c.clear() }}", {"d": {"a": 1}}),
    ("{% set l = d.get('missing', [1]) %}{% for i in range(40) %}{{ l.extend(l) }}"
     "{% endfor %}", {"d": {}}),
    ("{% set l = d.items() %}{{ l.append(1) }}", {"d": {"a": [1]}}),
    ("{% set l = d.a %}{{ l.append(1) }}", {"d": {"a": [1]}}),
    ("{{ d.pop('a') }}", {"d": {"a": 1}}),
]


async def test_no_template_can_mutate_a_substitution_value(http: HttpEnv) -> None:
    for template, substitutions in DOUBLING:
        status, payload = await http.inject(request(template, **substitutions))
        assert status == 200, payload
        assert payload["fail_count"] == 1, (template, payload)
        assert "read-only" in payload["errors"][0] or "has no method" in payload["errors"][0] \
            or "no attribute" in payload["errors"][0], (template, payload)
    assert http.messages == []


async def test_reading_substitution_values_still_works(http: HttpEnv) -> None:
    template = ("{{ l }} {{ l|length }} {{ l[0] }} {% for x in l %}{{ x }}{% endfor %} "
                "{{ d.a }} {{ d['b'][1] }} {% for k, v in d|items %}{{ k }}{% endfor %} "
                "{% for k, v in d.items() %}{{ v }}{% endfor %} {{ d.get('zz', 'dflt') }} "
                "{{ d|tojson }} {{ l.count(1) }}")
    status, payload = await http.inject(request(template, l=[1, 2], d={"a": "A", "b": [0, 9]}))
    assert (status, payload["success_count"]) == (200, 1), payload
    body = http.messages[0].data.decode()
    assert '[1, 2] 2 1 12 A 9 ab A[0, 9] dflt {"a": "A", "b": [0, 9]} 1' in body, body


async def test_rendered_output_over_max_rendered_size_fails_the_recipient(
    start_http: StartHttp,
) -> None:
    env = await start_http(max_rendered_size="64 KiB")
    status, payload = await env.inject(request("{{ 'x' * 70000 }}"))
    assert status == 200 and payload["fail_count"] == 1, payload
    assert "over the limit of 65536 (max_rendered_size)" in payload["errors"][0]
    status, payload = await env.inject(request("{{ 'x' * 60000 }}"))
    assert payload["success_count"] == 1, payload


async def test_deeply_nested_substitutions_are_a_400_not_a_500(http: HttpEnv) -> None:
    nested = b"[" * 1000 + b"1" + b"]" * 1000
    body = (b'{"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}], '
            b'"content": "x", "substitutions": {"n": ' + nested + b"}}")
    status, payload, _ = await http.request(
        "POST", "/api/inject/v1", data=body, headers={"Content-Type": "application/json"})
    assert status == 400, payload
