"""kumo.time TimeDelta: ``human`` and ``tostring`` in humantime's form, exact fields.

KumoMTA formats a TimeDelta with humantime's ``format_duration``: the non-zero parts from
years (365.25 days) and months (30.44 days) down to nanoseconds, separated by spaces, with
``year``/``month``/``day`` plural past one and ``0s`` for nothing; ``kumo.time.parse_duration``
reads that form back.
"""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load, make_runtime

HUMAN = [
    (90, "1m 30s"), (5400, "1h 30m"), (93600, "1day 2h"), (300, "5m"), (0, "0s"),
    (172800, "2days"), (1.5, "1s 500ms"), (3661, "1h 1m 1s"),
    (31_557_600 * 2 + 2_630_016 + 86_400 + 1, "2years 1month 1day 1s"),
]


async def test_time_delta_human_and_tostring_use_humantimes_format(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.value = [seconds for seconds, _ in HUMAN]
    await load(tmp_path, """\
        local kumo = require 'kumo'
        for _, seconds in ipairs(kumo.test.value()) do
          local delta = kumo.time.parse_duration(seconds)
          kumo.test.mark(delta.human .. '|' .. tostring(delta))
        end
    """, recorder=recorder)
    assert recorder.marks == [f"{text}|{text}" for _, text in HUMAN]


async def test_parse_duration_reads_humantimes_units_and_every_human_form_back(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local d = kumo.time.parse_duration
        for _, text in ipairs { '2months 3days', '1year', '3ms 5us 7ns', '1day 2h', '2 weeks' } do
          local delta = d(text)
          kumo.test.mark(delta.human .. '|' .. delta.nanoseconds .. '|'
            .. tostring(d(delta.human) == delta))
        end
    """, recorder=recorder)
    assert recorder.marks == [
        "2months 3days|5519232000000000|true", "1year|31557600000000000|true",
        "3ms 5us 7ns|3005007|true", "1day 2h|93600000000000|true", "14days|1209600000000000|true",
    ]


async def test_time_delta_integer_fields_are_exact_and_truncate_toward_zero(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local d = kumo.time.parse_duration
        for _, delta in ipairs { d(1.005), d(-1.5), d(0.000001), d('1s') - d(1.0005) } do
          kumo.test.mark({ delta.milliseconds, delta.microseconds, delta.nanoseconds,
                           math.type(delta.milliseconds), math.type(delta.seconds) })
        end
    """, recorder=recorder)
    assert recorder.marks == [
        [1005, 1_005_000, 1_005_000_000, "integer", "float"],
        [-1500, -1_500_000, -1_500_000_000, "integer", "float"],
        [0, 1, 1000, "integer", "float"],
        [0, -500, -500_000, "integer", "float"],
    ]


def test_python_time_delta_matches_lua() -> None:
    kumo = make_runtime().kumo
    delta = kumo.time.parse_duration("1h 30m")
    assert (delta.human, str(delta), delta.seconds) == ("1h 30m", "1h 30m", 5400.0)
    assert str(kumo.time.parse_duration("7ns")) == "7ns"


async def test_negative_time_delta_human_and_tostring_raise_as_kumomta(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local d = kumo.time.parse_duration
        local delta = d(10) - d(100)
        for _, read in ipairs {
          function() return delta.human end, function() return tostring(delta) end,
        } do
          local ok, err = pcall(read)
          kumo.test.mark({ ok, tostring(err):find(
            'Source duration value is out of range for the target type', 1, true) ~= nil })
        end
        -- the numeric fields stay signed
        kumo.test.mark({ delta.seconds, delta.milliseconds, (d(100) - d(10)).human })
    """, recorder=recorder)
    assert recorder.marks == [[False, True], [False, True], [-90.0, -90000, "1m 30s"]]
