"""The one encoder of log segments (``kumocore.ZstdSegmentWriter``): what it writes is read
back, line for line, by the one decoder (``kumocore.ZstdLines``), by kumocore's log reader
and by any zstd decoder; in progress (flushed, not closed) as well as finished."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import zstandard

from kumocore import ZstdLines, ZstdSegmentWriter
from kumocore.logs.reader import is_done, iter_records


@pytest.fixture
def opened() -> Iterator[list[ZstdSegmentWriter]]:
    """Segments a test leaves in progress are closed at teardown (no leaked descriptor)."""
    segments: list[ZstdSegmentWriter] = []
    yield segments
    for segment in segments:
        segment.close()


def new_segment(path: Path, opened: list[ZstdSegmentWriter], level: int = 3) -> ZstdSegmentWriter:
    segment = ZstdSegmentWriter(path, level)
    opened.append(segment)
    return segment


def sample_lines(count: int, seed: int = 7) -> list[bytes]:
    """JSON lines of varied length (some far longer than a zstd block) and content."""
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        pad = rng.choice((0, 10, 1000, 200_000))
        noise = rng.randbytes(pad // 2).hex() if pad else ""
        lines.append(orjson.dumps({"n": n, "who": "é<ü>@example.net", "noise": noise}))
    return lines


def read_with_zstd_lines(data: bytes, chunk: int = 4093) -> tuple[list[bytes], ZstdLines]:
    """Feed the file's bytes in uneven pieces, as a tailer reading a growing file does."""
    decoder = ZstdLines()
    lines: list[bytes] = []
    for start in range(0, len(data), chunk):
        lines += [line for line in decoder.feed(data[start : start + chunk]) if line is not None]
    return lines, decoder


def test_an_open_segment_ended_mid_way_by_a_flush_reads_back_exactly(
    tmp_path: Path, opened: list[ZstdSegmentWriter]
) -> None:
    lines = sample_lines(40)
    segment = new_segment(tmp_path / "seg", opened)
    for line in lines:
        segment.write(line + b"\n")
    segment.flush()  # not closed: the frame is still open, as a live writer leaves it

    data = segment.path.read_bytes()
    got, decoder = read_with_zstd_lines(data)
    assert got == lines
    assert not decoder.has_partial
    plain = zstandard.ZstdDecompressor().decompressobj()
    assert plain.decompress(data) == b"".join(line + b"\n" for line in lines)
    assert not plain.eof  # the frame has no end yet: a reader must wait for more
    assert [r["n"] for r in iter_records(segment.path)] == list(range(40))
    assert segment.written == sum(len(line) + 1 for line in lines)


def test_a_closed_segment_is_one_whole_frame_with_exactly_the_lines(tmp_path: Path) -> None:
    lines = sample_lines(25, seed=11)
    segment = ZstdSegmentWriter(tmp_path / "seg", level=0)  # 0: zstd's default level
    for line in lines:
        segment.write(line + b"\n")
    segment.close()

    data = segment.path.read_bytes()
    got, decoder = read_with_zstd_lines(data, chunk=65_537)
    assert got == lines
    assert not decoder.has_partial  # nothing after the last newline
    plain = zstandard.ZstdDecompressor().decompressobj()
    assert plain.decompress(data) == b"".join(line + b"\n" for line in lines)
    assert plain.eof and plain.unused_data == b""  # exactly one frame, ended


def test_a_record_cut_by_a_flush_is_pending_until_its_newline_arrives(
    tmp_path: Path, opened: list[ZstdSegmentWriter]
) -> None:
    segment = new_segment(tmp_path / "seg", opened)
    segment.write(b'{"n":1}\n{"n":2,')
    segment.flush()
    got, decoder = read_with_zstd_lines(segment.path.read_bytes())
    assert got == [b'{"n":1}']
    assert decoder.has_partial and decoder.finish() == b'{"n":2,'

    segment.write(b'"end":true}\n')
    segment.flush()
    got, decoder = read_with_zstd_lines(segment.path.read_bytes())
    assert got == [b'{"n":1}', b'{"n":2,"end":true}']
    assert not decoder.has_partial


def test_lines_reach_the_file_only_when_a_block_is_flushed(
    tmp_path: Path, opened: list[ZstdSegmentWriter]
) -> None:
    segment = new_segment(tmp_path / "seg", opened)
    segment.write(b'{"n":1}\n')
    assert read_with_zstd_lines(segment.path.read_bytes())[0] == []
    assert not segment.flushed
    segment.flush()
    assert segment.flushed
    assert read_with_zstd_lines(segment.path.read_bytes())[0] == [b'{"n":1}']


def test_the_file_is_private_whatever_the_umask(
    tmp_path: Path, opened: list[ZstdSegmentWriter]
) -> None:
    old = os.umask(0)
    try:
        segment = new_segment(tmp_path / "seg", opened)
    finally:
        os.umask(old)
    assert stat.S_IMODE(segment.path.stat().st_mode) == 0o600


def test_an_existing_file_is_never_opened_again_or_changed(tmp_path: Path) -> None:
    taken = tmp_path / "seg"
    taken.write_bytes(b"another writer's segment")
    with pytest.raises(FileExistsError):
        ZstdSegmentWriter(taken)
    assert taken.read_bytes() == b"another writer's segment"


def test_a_level_zstd_does_not_have_fails_before_any_file_is_made(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="level"):
        ZstdSegmentWriter(tmp_path / "seg", level=23)
    assert list(tmp_path.iterdir()) == []


def test_mark_done_clears_every_write_bit_which_the_log_reader_takes_as_finished(
    tmp_path: Path,
) -> None:
    segment = ZstdSegmentWriter(tmp_path / "seg")
    segment.write(b"{}\n")
    segment.close()
    assert not is_done(segment.path)
    segment.mark_done()
    assert stat.S_IMODE(segment.path.stat().st_mode) == 0o400
    assert is_done(segment.path)


def test_close_is_idempotent_and_a_closed_segment_takes_no_more_lines(tmp_path: Path) -> None:
    segment = ZstdSegmentWriter(tmp_path / "seg")
    segment.write(b"{}\n")
    segment.close()
    size = segment.path.stat().st_size
    segment.close()
    assert segment.closed
    with pytest.raises(ValueError):
        segment.write(b"{}\n")
    assert segment.path.stat().st_size == size


# Run in a child: the file size limit (RLIMIT_FSIZE 0) makes every write to a file fail,
# as a full disk does, and must not reach the test runner's own files.
_FAILING_CLOSE = """
import os, resource, signal, sys
from kumocore import ZstdSegmentWriter

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
before = len(os.listdir("/proc/self/fd"))
segment = ZstdSegmentWriter(sys.argv[1])
segment.write(b"{}\\n")  # still inside the compressor: nothing written yet
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
try:
    segment.close()
except OSError as exc:
    print("close failed:", exc.strerror)
print("leaked descriptors:", len(os.listdir("/proc/self/fd")) - before)
"""


def test_close_closes_the_file_even_when_ending_the_frame_fails(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FAILING_CLOSE, str(tmp_path / "seg")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.splitlines() == ["close failed: File too large", "leaked descriptors: 0"]
