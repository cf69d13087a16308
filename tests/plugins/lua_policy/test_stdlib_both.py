"""Every function of the Lua policy plugin's standard library, called the same way from Lua
and from Python, gives the same answer (and the list below covers all of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kumocore_lua_policy import LuaPolicyPlugin

from .support import Recorder, load, make_runtime

DIGEST_HELLO_SHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

#: (function, arguments, field of the result to compare or None, expected)
CASES: list[tuple[str, tuple[Any, ...], str | None, Any]] = [
    ("serde.json_parse", ('{"a": [1, 2]}',), None, {"a": [1, 2]}),
    ("serde.json_encode", ([1, 2],), None, "[1,2]"),
    ("serde.json_encode_pretty", ([1],), None, "[\n  1\n]"),
    ("serde.toml_parse", ("a = 1",), None, {"a": 1}),
    ("toml_parse", ("a = 'x'",), None, {"a": "x"}),
    ("serde.toml_encode", ({"a": 1},), None, "a = 1\n"),
    ("toml_encode", ({"a": "x"},), None, 'a = "x"\n'),
    # One item stays on its line, as the toml crate writes it; two or more go one a line.
    ("serde.toml_encode_pretty", ({"a": [1]},), None, "a = [1]\n"),
    ("toml_encode_pretty", ({"a": 1},), None, "a = 1\n"),
    ("serde.toml_encode_pretty_compact", ({"b": 1, "a": {}},), None, "a = {}\nb = 1\n"),
    ("serde.yaml_parse", ("a: [1, x]",), None, {"a": [1, "x"]}),
    ("serde.yaml_encode", ({"a": 1},), None, "a: 1\n"),
    ("string.split", ("a,b", ","), None, ["a", "b"]),
    ("string.rsplit", ("a,b", ","), None, ["b", "a"]),
    ("string.splitn", ("a,b,c", 2, ","), None, ["a", "b,c"]),
    ("string.rsplitn", ("a,b,c", 2, ","), None, ["c", "a,b"]),
    ("string.split_whitespace", (" a  b ",), None, ["a", "b"]),
    ("string.split_ascii_whitespace", ("a\tb",), None, ["a", "b"]),
    ("string.replace", ("aa", "a", "b"), None, "bb"),
    ("string.replacen", ("aaa", "a", "b", 2), None, "bba"),
    ("string.starts_with", ("abc", "ab"), None, True),
    ("string.ends_with", ("abc", "bc"), None, True),
    ("string.trim", (" a ",), None, "a"),
    ("string.trim_start", (" a ",), None, "a "),
    ("string.trim_end", (" a ",), None, " a"),
    ("string.wrap", ("aaa bbb", 3, 10), None, "aaa\r\n\tbbb"),
    ("regex.compile", ("a+",), "pattern", "a+"),
    ("regex.escape", ("a.b",), None, "a\\.b"),
    ("regex.is_match", ("^a", "abc"), None, True),
    ("regex_set_map.new", ({"^x": 1},), None, {}),  # iterating it lists no values
    ("domain_map.new", ({"a.com": 1},), None, {"a.com": 1}),
    ("cidr.make_map", ({"10.0.0.0/8": 1},), None, {"10.0.0.0/8": 1}),
    ("digest.sha256", ("hello",), "hex", DIGEST_HELLO_SHA256),
    ("digest.crc32", ("hello",), "hex", "3610a686"),
    *[(f"digest.{alg}", ("x",), "hex", None) for alg in (
        "sha1", "sha224", "sha384", "sha512", "sha512_256", "sha3_256", "sha3_384", "sha3_512")],
    *[(f"digest.hmac_{alg}", ({"key_data": "k"}, "m"), "hex", None) for alg in (
        "sha1", "sha224", "sha256", "sha384", "sha512")],
    ("encode.base64_encode", ("hi",), None, "aGk="),
    ("encode.base64_nopad_encode", ("hi",), None, "aGk"),
    ("encode.base64url_encode", ("??>",), None, "Pz8-"),
    ("encode.base64url_nopad_encode", ("?",), None, "Pw"),
    ("encode.base32_encode", ("hi",), None, "NBUQ===="),
    ("encode.base32_nopad_encode", ("hi",), None, "NBUQ"),
    ("encode.base32hex_encode", ("hi",), None, "D1KG===="),
    ("encode.base32hex_nopad_encode", ("hi",), None, "D1KG"),
    ("encode.hex_encode", ("hi",), None, "6869"),
    ("encode.base64_decode", ("aGk=",), None, "hi"),
    ("encode.base64_nopad_decode", ("aGk",), None, "hi"),
    ("encode.base64url_decode", ("Pz8-",), None, "??>"),
    ("encode.base64url_nopad_decode", ("Pw",), None, "?"),
    ("encode.base32_decode", ("NBUQ====",), None, "hi"),
    ("encode.base32_nopad_decode", ("NBUQ",), None, "hi"),
    ("encode.base32hex_decode", ("D1KG====",), None, "hi"),
    ("encode.base32hex_nopad_decode", ("d1kg",), None, "hi"),
    ("encode.hex_decode", ("6869",), None, "hi"),
    ("encode.charset_decode", ("latin-1", "abc"), None, "abc"),
    ("encode.charset_encode", ("ascii", "abc"), None, "abc"),
    ("time.from_unix_timestamp", (0,), "rfc3339", "1970-01-01T00:00:00+00:00"),
    ("time.with_ymd_hms", (2001, 2, 3, 4, 5, 6), "unix_timestamp", 981173106),
    ("time.parse_rfc3339", ("2001-02-03T04:05:06Z",), "unix_timestamp", 981173106),
    ("time.parse_rfc2822", ("Sat, 3 Feb 2001 04:05:06 +0000",), "unix_timestamp", 981173106),
    ("time.parse_duration", ("90s",), "human", "1m 30s"),
    ("time.now", (), "year", None),
    ("time.sleep", (0.01,), None, None),
    ("time.start_timer", ("label",), "label", "label"),
    ("uuid.parse", ("69994630-3e27-11ef-91fc-cc28aa0a5c5a",), "simple",
     "699946303e2711ef91fccc28aa0a5c5a"),
    *[(f"uuid.new_{v}", (), "hyphenated", None) for v in ("v1", "v4", "v6", "v7")],
    ("uncached_glob", ("/nonexistent/*",), None, {}),
    ("glob", ("/nonexistent/*",), None, {}),
    ("fs.glob", ("/nonexistent/*",), None, {}),
    ("fs.uncached_glob", ("/nonexistent/*",), None, {}),
    ("eval_config_monitor_globs", (), None, None),
    ("set_config_monitor_globs", (["/nonexistent/*.toml"],), None, None),
    ("policy_extras.monitor_files", (["/nonexistent/shaping.toml"],), None, None),
    ("configure_accounting_db_path", ("/tmp/acct.db",), None, None),
    ("dns.reverse_ip", ("127.0.0.1",), None, "1.0.0.127"),
    ("dns.ptr_host", ("::1",), None, "1." + "0." * 31 + "ip6.arpa"),
    ("http.build_url", ("https://example.com", {"a": 1}), None, "https://example.com/?a=1"),
    ("string.eval_template", ("x.json", "{{ n }}", {"n": "J"}), None, '"J"'),
]

#: Checked elsewhere with a real file or state: their own tests call them from both sides.
ELSEWHERE = {"serde.json_load", "json_load", "serde.toml_load", "toml_load",
             "serde.yaml_load", "memoize", "traceback", "bump_config_epoch",
             # test_stdlib_fs (real files), test_response_normalize (needs the word list),
             # test_stdlib_names (a string in Lua, a function in Python)
             "read_dir", "fs.read_dir", "fs.metadata_for_path", "fs.symlink_metadata_for_path",
             "fs.open", "string.normalize_smtp_response", "version",
             # test_counter_series, test_crypto_aes, test_crypto_sigv4 (a clock, keys)
             "counter_series.define", "crypto.aes_encrypt_block", "crypto.aes_decrypt_block",
             "crypto.aws_sign_v4",
             # test_mimepart (MIME parts are objects; both sides build the same text)
             "mimepart.parse", "mimepart.new_text", "mimepart.new_text_plain",
             "mimepart.new_html", "mimepart.new_binary", "mimepart.new_multipart",
             "mimepart.builder",
             # tests/core/test_memory_node, test_spool_health_node (process-wide state,
             # from Lua and Python policies on a running node)
             "set_memory_hard_limit", "set_memory_soft_limit", "set_memory_low_thresh",
             "get_memory_hard_limit", "get_memory_soft_limit", "get_memory_low_thresh",
             "suspend_delivery_when_spool_unhealthy",
             # tests/core/dns/test_cache_capacity (process-wide cache sizes)
             "set_lruttl_cache_capacity",
             # test_jsonl_tailer, test_jsonl_writer, test_mpsc (files, tasks; objects)
             "jsonl.new_tailer", "jsonl.new_multi_tailer", "jsonl.new_writer", "mpsc.define"}


def _python_value(value: Any) -> Any:
    """What Lua sees of a Python result, to compare with what Lua reported."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple) and not value:
        return {}
    if hasattr(value, "lua_proxy"):
        return {k: value.get(k) for k in value if value.get(k) is not None}
    return value


def test_the_cases_cover_every_stdlib_function() -> None:
    names = set(LuaPolicyPlugin().stdlib.functions())
    assert names - ELSEWHERE == {name for name, *_ in CASES}


@pytest.mark.parametrize(("name", "args", "field", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_lua_and_python_agree(
    tmp_path: Path, name: str, args: tuple[Any, ...], field: str | None, expected: Any
) -> None:
    recorder = Recorder()
    recorder.value = list(args)
    access = f"[{field!r}]".replace("'", '"') if field else ""
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local args = kumo.test.value()
        local fn = kumo.{name}
        local result = fn(table.unpack(args, 1, {len(args)}))
        local meta = type(result) == 'table' and getmetatable(result)
        if meta and meta.__name == 'kumo-map' then
          local plain = {{}}
          for k, v in pairs(result) do plain[k] = v end
          result = plain
        end
        kumo.test.mark({{ value = result{access} }})
    """, recorder=recorder)
    [lua_result] = recorder.marks
    lua_value = lua_result.get("value") if isinstance(lua_result, dict) else None
    fn: Any = make_runtime().kumo
    for part in name.split("."):
        fn = getattr(fn, part)
    py_value = fn(*args)
    if hasattr(py_value, "__await__"):
        py_value = await py_value
    if field:
        py_value = getattr(py_value, field)
    py_value = _python_value(py_value)
    if expected is not None:
        assert lua_value == expected
        assert py_value == expected
    elif name.startswith(("digest.", "encode.")):
        assert lua_value == py_value  # deterministic: both sides give the same bytes
    elif name.startswith(("uuid.", "time.now")):
        assert type(lua_value) is type(py_value) and lua_value is not None
    else:
        assert lua_value == py_value
