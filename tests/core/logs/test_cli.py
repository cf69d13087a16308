from __future__ import annotations

import argparse
import io
from pathlib import Path

import orjson
import pytest
import zstandard

from kumocore.logs.cli import add_logs_subcommand, run_logs


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kumocore")
    add_logs_subcommand(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def write_segment(path: Path, *records: dict[str, str]) -> None:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    path.write_bytes(zstandard.ZstdCompressor().compress(data))
    path.chmod(0o444)


def test_logs_cat_parses_type_and_queue_and_prints_matching_records(tmp_path: Path) -> None:
    write_segment(tmp_path / "seg", {"type": "Reception", "queue": "a"},
                  {"type": "Bounce", "queue": "a"}, {"type": "Bounce", "queue": "b"})
    args = parse(["logs", "cat", str(tmp_path), "--type", "Bounce", "--queue", "a"])
    out = io.StringIO()
    assert args.handler(args, out) == 0
    assert [orjson.loads(line) for line in out.getvalue().splitlines()] == [
        {"type": "Bounce", "queue": "a"}]


def test_logs_tail_no_follow_prints_last_n(tmp_path: Path) -> None:
    write_segment(tmp_path / "seg", *({"type": "Delivery", "queue": str(i)} for i in range(5)))
    args = parse(["logs", "tail", str(tmp_path), "-n", "2", "--no-follow"])
    out = io.StringIO()
    assert run_logs(args, out) == 0
    assert [orjson.loads(x)["queue"] for x in out.getvalue().splitlines()] == ["3", "4"]


def test_logs_cat_of_missing_directory_exits_1(tmp_path: Path) -> None:
    assert run_logs(parse(["logs", "cat", str(tmp_path / "nope")]), io.StringIO()) == 1


def test_logs_rejects_unknown_record_types() -> None:
    with pytest.raises(SystemExit):
        parse(["logs", "cat", "/tmp", "--type", "Nope"])


def test_kumocore_main_dispatches_logs_cat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kumocore.node.cli import main

    write_segment(tmp_path / "seg", {"type": "Delivery", "queue": "a"})
    assert main(["logs", "cat", str(tmp_path)]) == 0
    assert orjson.loads(capsys.readouterr().out) == {"type": "Delivery", "queue": "a"}


def test_logs_cat_bounds_memory_on_a_crafted_frame_and_reports_the_long_line(
    tmp_path: Path
) -> None:
    from bench.reliability.disk_fill import crafted_segment, logs_cat_max_rss

    segment = tmp_path / "20250101-000000.000000000"
    assert crafted_segment(segment) < 80 * 1024
    code, max_rss_kib, stdout, problems = logs_cat_max_rss(tmp_path)
    assert code == 0, problems
    assert max_rss_kib < 200 * 1024  # was 4.2 GB; the interpreter alone is ~60 MB
    assert problems == f"kumocore logs: {segment}: skipped a line longer than 4194304 bytes"
    assert [orjson.loads(x) for x in stdout.splitlines()] == [
        {"type": "Bounce", "queue": "after"}]


def test_logs_cat_reports_a_stray_non_zstd_file_in_one_line_and_reads_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "20250101-000000.000000000").write_bytes(b"not zstd at all\n" * 100)
    write_segment(tmp_path / "20250101-000001.000000000", {"type": "Bounce", "queue": "a"})
    out = io.StringIO()
    assert run_logs(parse(["logs", "cat", str(tmp_path)]), out) == 0
    assert [orjson.loads(x) for x in out.getvalue().splitlines()] == [
        {"type": "Bounce", "queue": "a"}]
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "not a readable zstd log segment" in errors[0], errors


def test_logs_cat_format_text_prints_one_readable_line_per_record(tmp_path: Path) -> None:
    write_segment(tmp_path / "seg", {
        "type": "Bounce", "id": "abc", "sender": "s@a.example", "recipient": "r@b.example",
        "queue": "b.example", "site": "mx.b.example", "timestamp": 1796310245,
        "bounce_classification": "InvalidRecipient", "peer_address": {"addr": "192.0.2.7"},
        "response": {"code": 550, "enhanced_code": {"class": 5, "subject": 1, "detail": 1},
                     "content": "no such\n user", "command": "RCPT TO"}})
    args = parse(["logs", "cat", str(tmp_path), "--format", "text", "--type", "Bounce"])
    out = io.StringIO()
    assert run_logs(args, out) == 0
    assert out.getvalue() == (
        "2026-12-03 15:04:05 Bounce           abc  s@a.example -> r@b.example  "
        "550 5.1.1 no such user  [queue=b.example site=mx.b.example class=InvalidRecipient "
        "peer=192.0.2.7]\n")


def test_logs_cat_format_text_joins_a_batch_records_recipients(tmp_path: Path) -> None:
    write_segment(tmp_path / "seg", {
        "type": "Delivery", "id": "abc", "sender": "s@a.example",
        "recipient": ["r1@b.example", "r2@b.example"], "queue": "b.example", "site": "",
        "timestamp": 1796310245, "response": {"code": 250, "content": "ok"}})
    args = parse(["logs", "cat", str(tmp_path), "--format", "text"])
    out = io.StringIO()
    assert run_logs(args, out) == 0
    assert "s@a.example -> r1@b.example,r2@b.example  250 ok" in out.getvalue()
