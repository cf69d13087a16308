"""The HTTP listener itself: liveness, the OpenAPI document, TLS, several listeners."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.common.smtp_client import insecure_client_context
from kumocore.http import add_openapi_paths, make_app
from kumocore.reception.tls import self_signed_pem
from tests.http.conftest import HttpEnv, StartHttp
from tests.reception.harness import make_reception


async def test_liveness_says_ok(http: HttpEnv) -> None:
    status, text, _ = await http.request("GET", "/api/check-liveness/v1")
    assert (status, text) == (200, "OK")


async def test_liveness_is_503_before_the_spool_is_ready(start_http: StartHttp) -> None:
    env = await start_http()
    env.reception.runtime.services = None  # as before the server wired its services
    status, text, _ = await env.request("GET", "/api/check-liveness/v1")
    assert (status, text) == (503, "waiting for spool enumeration")


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


async def test_openapi_document_describes_inject_and_liveness(http: HttpEnv) -> None:
    status, document, response = await http.request("GET", "/api-docs/openapi.json")
    assert status == 200 and response.content_type == "application/json"
    assert document["openapi"].startswith("3.")
    inject = document["paths"]["/api/inject/v1"]["post"]
    assert inject["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InjectV1Request"}
    assert set(inject["responses"]) == {
        "200", "400", "401", "403", "408", "413", "415", "422", "429"}
    assert set(document["paths"]["/api/check-liveness/v1"]["get"]["responses"]) == {
        "200", "503"}
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    request = schemas["InjectV1Request"]
    assert set(request["required"]) == {"envelope_sender", "recipients", "content"}
    assert request["additionalProperties"] is False
    assert set(schemas["InjectV1Response"]["properties"]) == {
        "success_count", "fail_count", "failed_recipients", "errors"}


async def test_openapi_document_includes_admin_paths(http: HttpEnv) -> None:
    _, document, _ = await http.request("GET", "/api-docs/openapi.json")
    assert "/api/admin/inspect-message/v1" in document["paths"]
    assert "/metrics" in document["paths"]


async def test_add_openapi_paths_merges_into_the_document() -> None:
    reception = await make_reception()
    try:
        from kumocore.config import HttpListenerConfig

        app = make_app(reception.runtime, HttpListenerConfig.from_options({}))
        add_openapi_paths(app, {"/api/custom/v1": {"get": {"responses": {"200": {
            "description": "ok"}}}}}, {"Custom": {"type": "object"}})
        add_openapi_paths(app, {"/api/inject/v1": {"put": {"responses": {}}}})
        from kumocore.http.openapi import OPENAPI_KEY

        document = app[OPENAPI_KEY]
        assert "get" in document["paths"]["/api/custom/v1"]
        assert set(document["paths"]["/api/inject/v1"]) == {"post", "put"}
        assert document["components"]["schemas"]["Custom"] == {"type": "object"}
        assert isinstance(app, web.Application)
    finally:
        await reception.close()


async def test_tls_listener_serves_https_with_a_generated_certificate(
    start_http: StartHttp,
) -> None:
    env = await start_http(use_tls=True)
    assert env.url.startswith("https://")
    status, text, _ = await env.request("GET", "/api/check-liveness/v1",
                                        ssl_context=insecure_client_context())
    assert (status, text) == (200, "OK")
    with pytest.raises(aiohttp.ClientError):
        await env.request("GET", "/api/check-liveness/v1", ssl_context=True)


async def test_tls_listener_serves_a_configured_certificate(start_http: StartHttp) -> None:
    cert_pem, key_pem = self_signed_pem("api.example")
    env = await start_http(use_tls=True, tls_certificate={"key_data": cert_pem.decode()},
                           tls_private_key={"key_data": key_pem.decode()})
    context = insecure_client_context()
    context.load_verify_locations(cadata=cert_pem.decode())
    status, body = await env.inject(
        {"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
         "content": "Subject: tls\n\nx"}, ssl_context=context)
    assert status == 200 and body["success_count"] == 1


async def test_several_http_listeners_run_at_once(start_http: StartHttp) -> None:
    first, second = await start_http(), await start_http()
    assert first.listener.address != second.listener.address
    for env in (first, second):
        assert (await env.request("GET", "/api/check-liveness/v1"))[0] == 200


async def test_inject_before_the_spool_is_ready_gets_503(start_http: StartHttp) -> None:
    env = await start_http()
    env.reception.runtime.services = None  # as before the server wired its services
    status, text = await env.inject(
        {"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
         "content": "Subject: x\n\ny"})
    assert (status, text) == (503, "waiting for spool startup")
