"""request:form_multipart_data { ... } against a real aiohttp server that parses the body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kumocore.errors import ConfigError
from kumocore.http.form_data import encode_form_data

from .support import Recorder, load, make_runtime


async def _parts(request: web.Request) -> web.Response:
    """Each part the server's multipart parser finds: its name, file name, type, bytes."""
    found: list[dict[str, Any]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        found.append(
            {
                "name": part.name,
                "filename": part.filename,
                "ctype": part.headers.get("Content-Type"),
                "cte": part.headers.get("Content-Transfer-Encoding", ""),
                "hex": (await part.read()).hex(),
            }
        )
    return web.json_response({"ctype": request.content_type, "parts": found})


@pytest.fixture
async def form_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/form", _parts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/form"
    await runner.cleanup()


def _by_name(reply: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {part["name"]: part for part in reply["parts"]}


async def test_lua_text_binary_and_file_fields_reach_the_server_as_sent(
    tmp_path: Path, form_url: str
) -> None:
    recorder = Recorder()
    recorder.value = form_url
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local client = kumo.http.build_client({})
        local r = client:post(kumo.test.value()):form_multipart_data {
          key = 'value',
          greeting = 'grüß dich\\nline two',
          blob = string.char(0, 255, 13, 10, 45, 45),
          upload = { data = 'file contents', file_name = 'report.csv' },
          image = { data = string.char(137, 80, 78, 71, 0, 255), file_name = 'x.png' },
        }:send()
        kumo.test.mark(kumo.json_decode(r:text()))
        client:close()
    """,
        recorder=recorder,
    )
    [reply] = recorder.marks
    assert reply["ctype"] == "multipart/form-data"
    parts = _by_name(reply)
    assert set(parts) == {"key", "greeting", "blob", "upload", "image"}
    assert parts["key"]["ctype"] == "text/plain; charset=utf-8"
    assert bytes.fromhex(parts["key"]["hex"]) == b"value"
    assert bytes.fromhex(parts["greeting"]["hex"]).decode() == "grüß dich\nline two"
    assert parts["blob"]["ctype"] == "application/octet-stream"
    assert bytes.fromhex(parts["blob"]["hex"]) == b"\x00\xff\r\n--"
    assert parts["upload"]["filename"] == "report.csv"
    assert parts["upload"]["ctype"] == "application/octet-stream"
    assert bytes.fromhex(parts["upload"]["hex"]) == b"file contents"
    assert parts["image"]["filename"] == "x.png"
    assert bytes.fromhex(parts["image"]["hex"]) == b"\x89PNG\x00\xff"
    # Raw bytes, as RFC 7578 asks: no transfer encoding for the receiver to undo.
    assert [part["cte"] for part in reply["parts"]] == ["", "", "", "", ""]


async def test_lua_number_value_is_an_error_naming_the_field(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local ok, err = pcall(function()
          return kumo.http.build_client({}):post('http://127.0.0.1:9/'):form_multipart_data {
            count = 3 }
        end)
        kumo.test.mark({ ok, tostring(err) })
    """,
        recorder=recorder,
    )
    [[ok, err]] = recorder.marks
    assert ok is False
    assert "field 'count' must be a string or a table of data and file_name" in err


def test_a_file_table_without_file_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="a file is a table of data = string and file_name"):
        encode_form_data({"upload": {"data": "x"}})


def test_quotes_and_line_breaks_in_names_cannot_break_out_of_the_header() -> None:
    content_type, body = encode_form_data({'a"\r\nX-Evil: 1': "v"})
    boundary = content_type.split('boundary="')[1].rstrip('"')
    head = body.split(b"\r\n\r\n", 1)[0].decode()
    assert head.splitlines() == [
        f"--{boundary}",
        'Content-Disposition: form-data; name="a%22%0D%0AX-Evil: 1"',
        "Content-Type: text/plain; charset=utf-8",
    ]


def test_the_boundary_never_occurs_in_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    import kumocore.http.form_data as form_data

    draws = iter(["0" * 32, "1" * 32])
    monkeypatch.setattr(form_data.secrets, "token_hex", lambda _n: next(draws))
    content_type, _ = encode_form_data({"a": "text with kumo-" + "0" * 32 + " inside"})
    assert content_type == f'multipart/form-data; boundary="kumo-{"1" * 32}"'


async def test_python_policy_posts_the_same_form(form_url: str) -> None:
    kumo = make_runtime().kumo
    client = kumo.http.build_client()
    request = client.post(form_url).form_multipart_data({"a": "1", "b": b"\xff\xfe"})
    reply = kumo.json_decode((await request.send()).text())
    await client.close()
    parts = _by_name(reply)
    assert (parts["a"]["ctype"], bytes.fromhex(parts["a"]["hex"])) == (
        "text/plain; charset=utf-8",
        b"1",
    )
    assert (parts["b"]["ctype"], bytes.fromhex(parts["b"]["hex"])) == (
        "application/octet-stream",
        b"\xff\xfe",
    )
