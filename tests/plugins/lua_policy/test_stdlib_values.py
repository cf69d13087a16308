"""kumo.domain_map, kumo.cidr.make_map, kumo.digest, kumo.encode, kumo.time, kumo.uuid."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore import ConfigError

from .support import Recorder, load, make_runtime


async def test_lua_domain_map_wildcards_and_explicit_entries(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local dmap = kumo.domain_map.new { ['*.woot.com'] = 123, ['example.com'] = 24 }
        dmap['*.example.com'] = 42
        dmap['explicit.example.com'] = 'explicit'
        for _, k in ipairs { 'lemon.example.com', 'example.com', 'woot.com', 'aa.woot.com',
                             'explicit.example.com', 'EXAMPLE.com' } do
          kumo.test.mark(tostring(dmap[k]))
        end
    """, recorder=recorder)
    assert recorder.marks == ["42", "24", "nil", "123", "explicit", "24"]


async def test_lua_cidr_map_most_specific_block_and_key_forms(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local cmap = kumo.cidr.make_map { ['10.0.0.0/8'] = 'lan', ['10.1.0.0/16'] = 'office' }
        cmap['127.0.0.1'] = 'me'
        cmap['::1'] = 'me6'
        for _, k in ipairs { '10.2.3.4', '10.1.2.3', '[127.0.0.1]', '127.0.0.1:25', '[::1]:25',
                             '192.168.1.1', 'not an ip' } do
          kumo.test.mark(tostring(cmap[k]))
        end
    """, recorder=recorder)
    assert recorder.marks == ["lan", "office", "me", "me", "me6", "nil", "nil"]


async def test_lua_digest_and_encode(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local d = kumo.digest.sha1 'hello'
        kumo.test.mark(tostring(d) == d.hex)
        kumo.test.mark(d.hex .. ' ' .. d.base32 .. ' ' .. d.base32hex .. ' ' .. d.base64)
        kumo.test.mark(d.base64url_nopad .. ' ' .. #d.bytes)
        kumo.test.mark(kumo.digest.sha256('a', 'b').hex == kumo.digest.sha256('ab').hex)
        local hmac = kumo.digest.hmac_sha256({ key_data = 'your key' }, 'your message')
        kumo.test.mark(hmac.hex)
        local enc = kumo.encode
        kumo.test.mark(enc.base64_encode 'hello' .. ' ' .. enc.base64_decode 'aGVsbG8=')
        kumo.test.mark(kumo.encode.hex_encode 'hi' .. ' ' .. kumo.encode.hex_decode '6869')
        kumo.test.mark(enc.base32_nopad_encode 'hi' .. ' ' .. enc.base32_nopad_decode 'NBUQ')
        kumo.test.mark(enc.base64url_nopad_encode '??>' .. ' ' .. enc.base32hex_encode 'hi')
        local ok, err = pcall(kumo.encode.base64_decode, '!!')
        kumo.test.mark(tostring(err):match('invalid input') ~= nil)
    """, recorder=recorder)
    assert recorder.marks == [
        True,
        "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d VL2MMHO4YXUKFWV63YHTWSBM3GXKSQ2N "
        "LBQCC7ESONKA5MLURO7JMI1CR6NAIGQD qvTGHdzF6KLavt4PO0gs2a6pQ00=",
        "qvTGHdzF6KLavt4PO0gs2a6pQ00 20", True,
        "87fc1cec5c02f0991ae80f50e98eb2eb5213d07fc40417682a74448ac1deb07c",
        "aGVsbG8= hello", "6869 hi", "NBUQ hi", "Pz8- D1KG====", True,
    ]


async def test_lua_time_and_uuid_objects(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local t = kumo.time.with_ymd_hms(2000, 01, 02, 03, 04, 05)
        kumo.test.mark(tostring(t))
        kumo.test.mark(t.year .. '-' .. t.month .. '-' .. t.day .. ' ' .. t.unix_timestamp)
        kumo.test.mark(t.rfc2822 .. ' | ' .. t.rfc3339 .. ' | ' .. t:format '%H:%M:%S')
        kumo.test.mark(kumo.time.parse_rfc3339('2000-01-02T03:04:05+00:00').unix_timestamp)
        kumo.test.mark(kumo.time.from_unix_timestamp(946782245).rfc3339)
        local dur = kumo.time.parse_duration
        kumo.test.mark(dur('5m').seconds .. ' ' .. dur(90).human)
        kumo.test.mark(kumo.time.now().year >= 2024)
        local u = kumo.uuid.parse '{69994630-3e27-11ef-91fc-cc28aa0a5c5a}'
        kumo.test.mark(tostring(u) .. ' ' .. u.simple .. ' ' .. u.urn)
        kumo.test.mark(kumo.uuid.parse(kumo.uuid.new_v4().hyphenated).braced:sub(1, 1))
        local v7, v6 = kumo.uuid.new_v7().hyphenated, kumo.uuid.new_v6().hyphenated
        kumo.test.mark(v7:sub(15, 15) .. v6:sub(15, 15))
    """, recorder=recorder)
    assert recorder.marks == [
        "2000-01-02 03:04:05 UTC", "2000-1-2 946782245",
        "Sun, 2 Jan 2000 03:04:05 +0000 | 2000-01-02T03:04:05+00:00 | 03:04:05",
        946782245, "2000-01-02T03:04:05+00:00", "300.0 1m 30s", True,
        "69994630-3e27-11ef-91fc-cc28aa0a5c5a 699946303e2711ef91fccc28aa0a5c5a "
        "urn:uuid:69994630-3e27-11ef-91fc-cc28aa0a5c5a", "{", "76",
    ]


async def test_lua_operators_on_time_and_kumocore_objects(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local t = kumo.time.with_ymd_hms(2000, 01, 02, 03, 04, 05)
        local hour = kumo.time.parse_duration '1h'
        kumo.test.mark(tostring(t + hour) .. ' ' .. (t + hour - t).seconds)
        kumo.test.mark((t - hour).hour .. ' ' .. (hour - kumo.time.parse_duration(600)).seconds)
        kumo.test.mark(t == kumo.time.from_unix_timestamp(946782245))
        kumo.test.mark(t == t + hour)
        local a = kumo.make_listener_domain { relay_from = { '10.0.0.0/24' } }
        local b = kumo.make_listener_domain { relay_from = { '10.0.0.0/24' } }
        kumo.test.mark(a == b)
        local ok, err = pcall(function() return t + 1 end)
        kumo.test.mark(tostring(err):match('cannot compute Time %+ int') ~= nil)
    """, recorder=recorder)
    assert recorder.marks == ["2000-01-02 04:04:05 UTC 3600.0", "2 3000.0", True, False, True,
                              True]


def test_python_gets_the_same_value_functions() -> None:
    kumo = make_runtime().kumo
    dmap = kumo.domain_map.new({"*.example.com": 1})
    dmap["example.com"] = 2
    assert (dmap["a.example.com"], dmap["example.com"], dmap.get("other")) == (1, 2, None)
    assert kumo.cidr.make_map({"10.0.0.0/8": "lan"})["[10.1.1.1]:25"] == "lan"
    with pytest.raises(ConfigError, match=r"invalid key '10\.0\.0\.1/8'"):
        kumo.cidr.make_map({"10.0.0.1/8": "host bits set"})
    assert kumo.digest.sha256("abc").hex.startswith("ba7816bf")
    assert kumo.digest.crc32("hello").hex == "3610a686"
    assert kumo.encode.base64url_nopad_decode("Pz8-") == b"??>"
    t = kumo.time.with_ymd_hms(2000, 1, 2, 3, 4, 5)
    assert (t + kumo.time.parse_duration("1h")).hour == 4
    assert (t - kumo.time.from_unix_timestamp(946782245 - 10)).seconds == 10
    assert kumo.uuid.parse("69994630-3e27-11ef-91fc-cc28aa0a5c5a").bytes[:2] == b"\x69\x99"
    with pytest.raises(ConfigError, match="not a UUID"):
        kumo.uuid.parse("nope")
