"""machine-info, set_diagnostic_log_filter, abort-ready-q-conn and resolve-egress-path,
through the real HTTP listener of a started node (kumocore.testing), with a real sink."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from kumocore import __version__
from kumocore.queue.path import EgressPath
from kumocore.testing import Node
from kumocore.testing.node import SINK_HOST
from kumocore.testing.plugin import MakeNode
from tests.support.admin_cli import run_cli
from tests.support.holding_sink import HoldingSink

UNTRUSTED = "127.0.0.5"
ABORT = "/api/admin/abort-ready-q-conn/v1"
LOG_FILTER = "/api/admin/set_diagnostic_log_filter/v1"
RESOLVE = "/api/admin/resolve-egress-path/v1"


async def call(node: Node, method: str, path: str, *, data: bytes | None = None,
               source: str = "127.0.0.1") -> tuple[int, str, str]:  # fmt: skip
    """(status, content type, text) of one request from a client bound to ``source``."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session, session.request(
            method, node.http_url + path, data=data,
            headers={"Content-Type": "application/json"}) as response:  # fmt: skip
        return response.status, response.content_type, await response.text()


@pytest.fixture
async def holding_sink() -> AsyncIterator[HoldingSink]:
    sink = await HoldingSink().start()
    yield sink
    sink.handler.release.set()
    await sink.stop()


@pytest.fixture
def restore_log_level() -> Iterator[None]:
    """The log filter is process-wide: put the test run's own back afterwards."""
    saved, level = structlog.get_config(), logging.getLogger().level
    yield
    structlog.configure(**saved)
    logging.getLogger().setLevel(level)


# ---------------------------------------------------------------------- access
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/machine-info"), ("POST", LOG_FILTER), ("POST", ABORT),
    ("GET", f"{RESOLVE}?domain=example.com")])  # fmt: skip
async def test_an_untrusted_peer_is_refused_every_new_endpoint(
    make_node: MakeNode, method: str, path: str
) -> None:
    node = await make_node(sink=False)
    body = b'{"filter": "kumod=debug"}' if method == "POST" else None
    status, _, text = await call(node, method, path, data=body, source=UNTRUSTED)
    assert (status, text) == (401, f"{UNTRUSTED} not permitted {method} on {path.split('?')[0]}")


# ---------------------------------------------------------------------- machine-info
async def test_machine_info_reports_this_process_and_machine(make_node: MakeNode) -> None:
    node = await make_node(sink=False)
    status, _, text = await call(node, "GET", "/api/machine-info")
    info = json.loads(text)
    assert status == 200
    assert info["hostname"] == socket.gethostname()
    assert info["node_id"] == node.runtime.nodeid  # the id in this process's log records
    assert info["process_kind"] == "kumocore" and info["version"] == __version__
    assert info["num_cores"] >= 1 and info["platform"].startswith("linux/")
    started = datetime.datetime.fromisoformat(info["online_since"])
    assert time.time() - 600 < started.timestamp() <= time.time()
    machine_id = Path("/etc/machine-id")
    if machine_id.exists() and machine_id.read_text().strip():
        assert info["fingerprint"] == f"machine_uid={machine_id.read_text().strip()}"
    assert "aws_instance_id" not in info.get("fingerprint", "")  # nothing made up


# ---------------------------------------------------------------------- log filter
async def test_log_filter_is_applied_and_answers_an_empty_200(
    make_node: MakeNode, restore_log_level: None
) -> None:
    node = await make_node(sink=False)
    assert await call(node, "POST", LOG_FILTER, data=b'{"filter": "kumod=debug"}') \
        == (200, "application/octet-stream", "")
    assert logging.getLogger().level == logging.DEBUG
    assert (await call(node, "POST", LOG_FILTER, data=b'{"filter": "kumod=error"}'))[0] == 200
    assert logging.getLogger().level == logging.ERROR


@pytest.mark.parametrize(("body", "error"), [
    (b"{not json", "request body is not valid JSON"),
    (b"[]", "request body must be a JSON object"),
    (b"{}", "field 'filter' is required and must be a string"),
    (b'{"filter": "kumod=loud"}', "unknown level in 'kumod=loud'"),
    (b'{"filter": "kumod=info", "extra": 1}', "unknown field(s) 'extra'"),
])  # fmt: skip
async def test_a_bad_log_filter_request_is_a_400_json_error_and_changes_nothing(
    make_node: MakeNode, restore_log_level: None, body: bytes, error: str
) -> None:
    node = await make_node(sink=False)
    level = logging.getLogger().level
    status, content_type, text = await call(node, "POST", LOG_FILTER, data=body)
    assert (status, content_type) == (400, "application/json")
    assert error in json.loads(text)["error"]
    assert logging.getLogger().level == level


# ---------------------------------------------------------------------- abort
@pytest.mark.parametrize(("body", "error"), [
    (b'{"queue_name": "q"}', "field 'session_id' is required"),
    (b'{"queue_name": "q", "session_id": "nope"}', "not a UUID"),
    (b'{"session_id": "9511a32e-66f8-42aa-b151-ccb176df47d9"}', "field 'queue_name'"),
])  # fmt: skip
async def test_a_malformed_abort_request_is_a_400_json_error(
    make_node: MakeNode, body: bytes, error: str
) -> None:
    node = await make_node(sink=False)
    status, content_type, text = await call(node, "POST", ABORT, data=body)
    assert (status, content_type) == (400, "application/json")
    assert error in json.loads(text)["error"]


async def test_aborting_an_unknown_queue_or_session_is_404(make_node: MakeNode) -> None:
    node = await make_node(sink=False)
    session = uuid.uuid4()
    body = f'{{"queue_name": "a->b@smtp_client", "session_id": "{session}"}}'.encode()
    status, _, text = await call(node, "POST", ABORT, data=body)
    assert status == 404
    assert json.loads(text) == {
        "error": f"no matching dispatcher for queue=a->b@smtp_client session={session}"}


async def _held_connection(node: Node, sink: HoldingSink) -> tuple[EgressPath, uuid.UUID]:
    await asyncio.wait_for(sink.handler.holding.wait(), 10)
    services = node.runtime.services
    assert services is not None
    paths = list(services.queues.paths.values())
    assert len(paths) == 1 and len(paths[0].dispatchers) == 1
    return paths[0], next(iter(paths[0].dispatchers)).session_id


async def test_aborting_a_held_connection_retries_its_message_which_is_delivered_once(
    make_node: MakeNode, holding_sink: HoldingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The message goes back to its scheduled queue with KumoMTA's 0-59 s jitter
    # (tests/queue/test_delayed_records_abort.py); with none it is retried at once.
    monkeypatch.setattr("kumocore.queue.delays.drop_delay", lambda: 0)
    node = await make_node(sink=holding_sink)
    await node.send(recipients="user@example.com")
    path, session = await _held_connection(node, holding_sink)
    body = f'{{"queue_name": "{path.key.name}", "session_id": "{session}"}}'.encode()
    status, content_type, text = await call(node, "POST", ABORT, data=body)
    assert (status, content_type, text) == (200, "text/plain", f"aborted {session}")
    await node.wait_for("Delivery", recipient="user@example.com")
    assert [m.recipient for m in holding_sink.messages] == ["user@example.com"]
    assert holding_sink.state.connections == 2  # the aborted one, and the retry
    assert len(node.logs("Delivery")) == 1
    assert node.logs("TransientFailure", "Bounce") == []  # no outcome for the cut attempt
    assert session not in {d.session_id for d in path.dispatchers}
    status, _, _ = await call(node, "POST", ABORT, data=body)
    assert status == 404  # that connection is gone


# ---------------------------------------------------------------------- resolve
async def test_resolve_egress_path_reports_what_routing_would_use(make_node: MakeNode) -> None:
    node = await make_node()
    assert node.sink is not None
    status, _, text = await call(node, "GET", f"{RESOLVE}?domain=example.com&source=s1")
    answer: dict[str, Any] = json.loads(text)
    assert status == 200
    assert answer["domain"] == "example.com" and answer["source"] == "s1"
    site = answer["mx"]["site_name"]
    assert answer["mx"]["by_preference"] == {"10": [f"{SINK_HOST}."]}
    assert answer["mx"]["is_mx"] is True and answer["mx"]["is_domain_literal"] is False
    assert answer["queue_name"] == f"s1->{site}@smtp_client"
    assert answer["path_config"]["smtp_port"] == node.sink.port  # the policy's answer
    assert "max_age" in answer["queue_config"]
    assert answer["constraints"]["max_concurrent_dispatchers"]["display"] == "32"
    services = node.runtime.services
    assert services is not None and services.queues.paths == {}  # nothing was opened


async def test_resolve_falls_back_to_the_domain_as_site_when_dns_fails(
    make_node: MakeNode
) -> None:
    node = await make_node()
    node.dns.set_servfail(True, ["broken.example"])
    status, _, text = await call(node, "GET", f"{RESOLVE}?domain=broken.example")
    answer = json.loads(text)
    assert status == 200 and answer["mx"] is None and answer["source"] == "unspecified"
    assert answer["queue_name"] == "unspecified->broken.example@smtp_client"


#: 63 octets: the longest label a DNS name may have.
LABEL_63 = "a" * 63


@pytest.mark.parametrize(("query", "error"), [
    ("", "query parameter 'domain' is required"),
    ("?domain=example.com&tenant=t", "unknown query parameter(s) 'tenant'"),
    ("?domain=a..example", "empty label"),
    ("?domain=.example", "empty label"),
    ("?domain=exa%20mple.com", "label 'exa mple' is not letters, digits and inner hyphens"),
    ("?domain=-bad.example", "label '-bad' is not letters"),
    ("?domain=bad-.example", "label 'bad-' is not letters"),
    ("?domain=under_score.example", "label 'under_score' is not letters"),
    ("?domain=xn--zz.example", "label 'xn--zz' is not valid IDNA"),
    (f"?domain={'a' * 64}.example", "is not valid IDNA (label empty or too long)"),
    # 4 * (63 + 1) - 1 = 255 octets, past the 253 a name may have
    (f"?domain={LABEL_63}.{LABEL_63}.{LABEL_63}.{LABEL_63}", "longer than 253 octets (255)"),
    ("?domain=[192.0.2.300]", "not an IP address"),
])  # fmt: skip
async def test_a_bad_resolve_query_is_a_400_json_error(
    make_node: MakeNode, query: str, error: str
) -> None:
    node = await make_node(sink=False)
    status, content_type, text = await call(node, "GET", RESOLVE + query)
    assert (status, content_type) == (400, "application/json")
    assert error in json.loads(text)["error"]


@pytest.mark.parametrize("domain", [
    "bücher.example",  # IDNA: a U-label
    "xn--bcher-kva.example",  # and its A-label
    "Example.COM.",  # any case, the root's dot
    f"{LABEL_63}.{LABEL_63}.{LABEL_63}.{'a' * 61}",  # exactly 253 octets
    "[192.0.2.1]",  # a domain literal
    "example.com:2526",  # a name with a port, as a queue's routing domain may be
])  # fmt: skip
async def test_a_valid_destination_is_resolved(make_node: MakeNode, domain: str) -> None:
    node = await make_node()
    status, _, text = await call(node, "GET", f"{RESOLVE}?domain={domain}")
    assert status == 200, text
    assert json.loads(text)["domain"] == domain


# ---------------------------------------------------------------------- CLI (kcli's names)


async def test_cli_set_log_filter_prints_ok_and_a_bad_filter_fails(
    make_node: MakeNode, restore_log_level: None, capsys: Any
) -> None:
    node = await make_node(sink=False)
    code, out, _ = await run_cli(capsys, "set-log-filter", "kumod=warn", "--endpoint",
                                 node.http_url)
    assert (code, out) == (0, "OK\n") and logging.getLogger().level == logging.WARNING
    code, _, err = await run_cli(capsys, "set-log-filter", "kumod=loud", "--endpoint",
                                 node.http_url)  # fmt: skip
    assert code == 1 and "unknown level" in json.loads(err)["error"]


async def test_cli_abort_ready_q_conn_prints_the_answer_or_the_error(
    make_node: MakeNode, holding_sink: HoldingSink, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kumocore.queue.delays.drop_delay", lambda: 0)  # retried at once
    node = await make_node(sink=holding_sink)
    await node.send(recipients="cli@example.com")
    path, session = await _held_connection(node, holding_sink)
    code, out, _ = await run_cli(capsys, "abort-ready-q-conn", path.key.name, str(session),
                                 "--endpoint", node.http_url)  # fmt: skip
    assert (code, out) == (0, f"aborted {session}\n")
    await node.wait_for("Delivery", recipient="cli@example.com")
    code, _, err = await run_cli(capsys, "abort-ready-q-conn", path.key.name, str(session),
                                 "--endpoint", node.http_url)  # fmt: skip
    assert code == 1 and "no matching dispatcher" in json.loads(err)["error"]


async def test_cli_resolve_egress_path_prints_kclis_text_config_ceilings_or_json(
    make_node: MakeNode, capsys: Any
) -> None:
    node = await make_node()
    assert node.sink is not None
    endpoint = ("--endpoint", node.http_url)
    code, out, _ = await run_cli(capsys, "resolve-egress-path", "example.com", "s1", *endpoint)
    assert code == 0
    head, config = out.split("\n--- egress path config ---\n\n")
    config, ceilings = config.split("\n--- effective ceilings ---\n\n")
    assert head.startswith("domain: example.com\nsource: s1\n"
                           f"queue:  s1->{SINK_HOST}@smtp_client\n\nmx (site: {SINK_HOST}):\n")
    assert f"\n    10  {SINK_HOST}.\n" in head
    assert f"smtp_port = {node.sink.port}\n" in config
    assert config.endswith("\n[connection_limit]\nforce_local = false\nlimit = 32\n")
    assert ceilings == "ceilings:\n  concurrent dispatchers: 32\n    source: connection_limit\n"

    code, out, _ = await run_cli(capsys, "resolve-egress-path", "example.com", "--constraints",
                                 *endpoint)  # fmt: skip
    assert (code, out) == (0, ceilings)
    code, out, _ = await run_cli(capsys, "resolve-egress-path", "example.com", "--config",
                                 *endpoint)  # fmt: skip
    assert code == 0 and out == config
    code, out, _ = await run_cli(capsys, "resolve-egress-path", "example.com", "--json", *endpoint)
    assert code == 0 and json.loads(out)["source"] == "unspecified"
    assert json.loads(out)["constraints"]["max_message_rate"] is None


async def test_cli_resolve_egress_path_takes_one_output_flag_and_reports_a_bad_domain(
    make_node: MakeNode, capsys: Any
) -> None:
    node = await make_node(sink=False)
    with pytest.raises(SystemExit) as refused:  # argparse: mutually exclusive
        await run_cli(capsys, "resolve-egress-path", "example.com", "--json", "--constraints",
                      "--endpoint", node.http_url)  # fmt: skip
    assert refused.value.code == 2
    code, _, err = await run_cli(capsys, "resolve-egress-path", "a..example", "--endpoint",
                                 node.http_url)  # fmt: skip
    assert code == 1 and "empty label" in json.loads(err)["error"]


# ---------------------------------------------------------------------- merging (workers)
def test_an_abort_answered_by_another_worker_is_the_nodes_answer() -> None:
    from aiohttp import web

    from kumocore.admin.merge import merge_first_success
    from kumocore.admin.peers import PeerAnswer

    missing = web.json_response({"error": "no matching dispatcher"}, status=404)
    found = PeerAnswer(1, 200, b"aborted 9511a32e-66f8-42aa-b151-ccb176df47d9", "text/plain")
    merged = merge_first_success(missing, [PeerAnswer(2, 404, b"{}"), found])
    assert (merged.status, merged.body, merged.content_type) == (200, found.body, "text/plain")
    unreached = PeerAnswer(3, 0, b"")
    assert merge_first_success(missing, [PeerAnswer(2, 404, b"{}"), unreached]) is missing
