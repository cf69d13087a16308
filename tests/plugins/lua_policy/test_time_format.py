"""``Time:format``, ``rfc3339`` and ``tostring`` of a Time as KumoMTA writes them (chrono).

chrono's strftime differs from Python's on the fraction specifiers (``%f`` is nanoseconds,
``%.3f``, ``%.f``, ``%3f``), the colon offsets (``%:z``, ``%::z``, ``%:::z``), ``%+`` and
``%q``; it is lenient: an unknown specifier is written as given.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore import PolicyError

from .support import Recorder, load

#: 2001-07-08 00:34:59.026490 UTC, a Sunday (the date of chrono's own examples).
WHEN = "2001-07-08T00:34:59.026490Z"

CASES = [
    ("%+", "2001-07-08T00:34:59.026490+00:00"),
    ("%z %:z %::z %:::z %Z", "+0000 +00:00 +00:00:00 +00 UTC"),
    ("%f|%.f|%.3f|%.6f|%.9f|%3f|%6f|%9f",
     "026490000|.026490|.026|.026490|.026490000|026|026490|026490000"),
    ("%c", "Sun Jul  8 00:34:59 2001"),
    ("%D %x %F %v %R %T %X %r", "07/08/01 07/08/01 2001-07-08  8-Jul-2001 00:34 00:34:59 "
                                "00:34:59 12:34:59 AM"),
    ("%Y %C %y %q %m %d %e %j %U %W %G %g %V %u %w", "2001 20 01 3 07 08  8 189 27 27 2001 01 "
                                                   "27 7 0"),
    ("%H %k %I %l %P %p %M %S %s", "00  0 12 12 am AM 34 59 994552499"),
    ("%-d|%_m|%0e|%-j", "8| 7|08|189"),
    ("%a %A %b %B %h%t%%%n", "Sun Sunday Jul July Jul\t%\n"),
    # lenient: unknown specifiers, padding on a non-number, a trailing '%' stay as written
    ("%Q %-a %. %:x %", "%Q %-a %. %:x %"),
]


async def test_time_format_uses_chronos_strftime(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.value = [fmt for fmt, _ in CASES]
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local t = kumo.time.parse_rfc3339 '{WHEN}'
        for _, fmt in ipairs(kumo.test.value()) do
          kumo.test.mark(t:format(fmt))
        end
    """, recorder=recorder)
    assert recorder.marks == [text for _, text in CASES]


async def test_rfc3339_and_tostring_show_a_fraction_only_when_there_is_one(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        for _, text in ipairs {{ '{WHEN}', '2001-07-08T00:34:59.5Z', '2001-07-08T00:34:59Z' }} do
          local t = kumo.time.parse_rfc3339(text)
          kumo.test.mark(t.rfc3339 .. '|' .. tostring(t))
        end
    """, recorder=recorder)
    assert recorder.marks == [
        "2001-07-08T00:34:59.026490+00:00|2001-07-08 00:34:59.026490 UTC",
        "2001-07-08T00:34:59.500+00:00|2001-07-08 00:34:59.500 UTC",
        "2001-07-08T00:34:59+00:00|2001-07-08 00:34:59 UTC",
    ]


async def test_time_format_refuses_the_parse_only_specifier(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="%#z is for parsing only"):
        await load(tmp_path, """\
            local kumo = require 'kumo'
            kumo.time.now():format '%#z'
        """)
