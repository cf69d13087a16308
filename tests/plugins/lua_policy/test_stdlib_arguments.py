"""Missing or mistyped arguments of ``kumo.serde.*`` and ``kumo.time.*`` are refused with one
line naming the function and the argument (KumoMTA's mlua refuses nil where it wants a
string or a number), not with a Python ``TypeError``/``AttributeError``; numbers and
numeric strings are coerced as mlua coerces them."""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load


async def refusals(tmp_path: Path, calls: str) -> list[str]:
    """What each ``err(f, ...)`` line of ``calls`` raised, as the policy sees it."""
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local function err(f, ...) kumo.test.mark(tostring(select(2, pcall(f, ...)))) end
    """ + calls, recorder=recorder)
    return [str(mark) for mark in recorder.marks]


def assert_named(got: list[str], expected: list[str]) -> None:
    for text, want in zip(got, expected, strict=True):
        assert want in text, text
        assert "Error:" not in text and "NoneType" not in text, text


async def test_nil_arguments_are_refused_naming_the_argument(tmp_path: Path) -> None:
    got = await refusals(tmp_path, """\
        err(kumo.serde.json_parse, nil)
        err(kumo.serde.json_load, nil)
        err(kumo.serde.toml_parse, {})
        err(kumo.serde.toml_load, nil)
        err(kumo.serde.yaml_parse, true)
        err(kumo.serde.yaml_load, nil)
        err(kumo.time.parse_rfc3339, nil)
        err(kumo.time.parse_rfc2822, {})
        err(kumo.time.from_unix_timestamp, nil)
        err(kumo.time.from_unix_timestamp, 'soon')
    """)
    assert_named(got, [
        "kumo.serde.json_parse: TEXT must be a string or a number, got nil",
        "kumo.serde.json_load: PATH must be a string or a number, got nil",
        "kumo.serde.toml_parse: TEXT must be a string or a number, got table",
        "kumo.serde.toml_load: PATH must be a string or a number, got nil",
        "kumo.serde.yaml_parse: TEXT must be a string or a number, got boolean",
        "kumo.serde.yaml_load: PATH must be a string or a number, got nil",
        "kumo.time.parse_rfc3339: TEXT must be a string or a number, got nil",
        "kumo.time.parse_rfc2822: TEXT must be a string or a number, got table",
        "kumo.time.from_unix_timestamp: SECONDS must be a number, got nil",
        "kumo.time.from_unix_timestamp: SECONDS must be a number, got string",
    ])


async def test_numbers_and_numeric_strings_are_coerced(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark(kumo.serde.json_parse(42))
        kumo.test.mark(kumo.time.from_unix_timestamp('60').rfc3339)
        kumo.test.mark(kumo.time.from_unix_timestamp(1.5).unix_timestamp_millis)
    """, recorder=recorder)
    assert recorder.marks == [42, "1970-01-01T00:01:00+00:00", 1500]


async def test_nil_arguments_of_mimepart_encode_regex_and_time_builders_are_named(
    tmp_path: Path,
) -> None:
    # Found by running every Lua example of KumoMTA's reference pages: these leaked a
    # Python AttributeError/TypeError, or took nil as the content type "None".
    got = await refusals(tmp_path, """\
        err(kumo.mimepart.new_text_plain, nil)
        err(kumo.mimepart.new_html, {})
        err(kumo.mimepart.new_text, nil, 'body')
        err(kumo.mimepart.new_binary, 'application/pdf', nil)
        err(kumo.mimepart.new_multipart, 'multipart/mixed', 'x')
        err(kumo.encode.charset_decode, nil, 'x')
        err(kumo.encode.charset_encode, 'utf-8', nil)
        err(kumo.regex.escape, nil)
        err(kumo.time.with_ymd_hms, 2026, 12, 7, 1, 2, nil)
        err(kumo.serde.toml_encode, nil)
    """)
    assert_named(got, [
        "kumo.mimepart.new_text_plain: CONTENT must be a string, got nil",
        "kumo.mimepart.new_html: CONTENT must be a string, got table",
        "kumo.mimepart.new_text: CONTENT_TYPE must be a string, got nil",
        "kumo.mimepart.new_binary: CONTENT must be a string, got nil",
        "kumo.mimepart.new_multipart: PARTS must be an array of MimePart objects, got string",
        "kumo.encode.charset_decode: CHARSET must be a string or a number, got nil",
        "kumo.encode.charset_encode: TEXT must be a string or a number, got nil",
        "kumo.regex.escape: TEXT must be a string or a number, got nil",
        "kumo.time.with_ymd_hms: SECOND must be an integer, got nil",
        "got nil",
    ])


async def test_mistyped_arguments_of_glob_is_match_and_shaping_load_are_named(
    tmp_path: Path,
) -> None:
    # Found by calling every kumo.* function with nil, a table, a boolean and a number.
    got = await refusals(tmp_path, """\
        err(kumo.glob, {})
        err(kumo.uncached_glob, '*.lua', true)
        err(kumo.regex.is_match, 'x', nil)
        err(kumo.shaping.load, {}, 5)
    """)
    assert_named(got, [
        "kumo.glob: PATTERN must be a string or a number, got table",
        "kumo.glob: RELATIVE_TO must be a string or a number, got boolean",
        "kumo.regex.is_match: HAYSTACK must be a string or a number, got nil",
        "kumo.shaping.load: OPTIONS must be a table, got number",
    ])


async def test_string_arguments_are_refused_in_luas_terms_not_pythons(tmp_path: Path) -> None:
    # These said "got None", "got {...}" or "got 42" (Python's repr): one check for all.
    got = await refusals(tmp_path, """\
        err(kumo.make_throttle, nil, '10/s')
        err(kumo.make_throttle, '', '10/s')
        err(kumo.dns.define_resolver, {}, 'HickorySystemConfig')
        err(kumo.reject, 451, nil)
        err(kumo.spawn_task, { event_name = 42 })
        err(kumo.make_message, 'a@example.com', 'b@example.com', true)
    """)
    assert_named(got, [
        "kumo.make_throttle: name must be a non-empty string, got nil",
        "kumo.make_throttle: name must be a non-empty string, got an empty string",
        "kumo.dns.define_resolver: NAME must be a non-empty string, got table",
        "kumo.reject: the reply text must be a string, got nil",
        "kumo.spawn_task: event_name must be a non-empty string, got number",
        "kumo.make_message: BODY must be a string, got boolean",
    ])
