from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from kumocore_local_logs import LocalLogsPlugin
from kumocore_local_logs.segment import segment_name

from kumocore import ConfigError
from kumocore.logs import LogDispatcher
from kumocore.logs.reader import is_done, iter_records
from kumocore.policy.hooks import Hooks
from kumocore.policy.plugins import make_plugin_manager
from tests.core.logs.fakes import FakeMessage, record


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def configure(tmp_path: Path, **options: Any) -> Any:
    return LocalLogsPlugin().configure(log_dir=str(tmp_path), **options)


async def test_records_written_are_read_back_with_selected_meta_and_headers(
    tmp_path: Path,
) -> None:
    sink = configure(tmp_path, meta=["tenant"], headers=["Subject"])
    msg = FakeMessage(meta={"tenant": "acme", "secret": 1}, headers=[("Subject", "hi")])
    written = [record(message=msg, header_names=sink.header_names, queue=f"q{i}")
               for i in range(3)]
    await sink.write_batch(written)
    await sink.close()
    read = list(iter_records(tmp_path))
    assert read == [r.to_json(["tenant"], ["Subject"]) for r in written]
    assert read[0]["meta"] == {"tenant": "acme"} and read[0]["headers"] == {"Subject": "hi"}


async def test_segment_is_named_by_utc_open_time_and_marked_read_only_on_close(
    tmp_path: Path,
) -> None:
    sink = configure(tmp_path)
    await sink.write_batch([record()])
    (path,) = segments(tmp_path)
    assert len(path.name) == len("20250912-110801.440526026")
    assert path.name[8] == "-" and path.name[15] == "." and not path.suffix[1:].isalpha()
    assert not is_done(path)
    await sink.close()
    assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0


def test_segment_name_matches_kumomta_format() -> None:
    assert segment_name(1_757_675_281_440_526_026) == "20250912-110801.440526026"
    assert segment_name(1_757_675_281_000_000_005, "_x") == "20250912-110801.000000005_x"


async def test_in_progress_segment_is_readable_up_to_the_last_batch(tmp_path: Path) -> None:
    sink = configure(tmp_path)
    await sink.write_batch([record(queue="a")])
    await sink.write_batch([record(queue="b"), record(queue="c")])
    (path,) = segments(tmp_path)
    assert not is_done(path)
    assert [r["queue"] for r in iter_records(tmp_path)] == ["a", "b", "c"]
    await sink.close()


async def test_segments_rotate_when_max_file_size_is_exceeded(tmp_path: Path) -> None:
    line = len(record(queue="0").to_json_bytes()) + 1
    sink = configure(tmp_path, max_file_size=line * 3)
    await sink.write_batch([record(queue=str(i)) for i in range(7)])
    files = segments(tmp_path)
    assert len(files) == 3  # 3 + 3 full (rotated after the crossing record), 1 in progress
    assert [is_done(p) for p in files] == [True, True, False]
    per_file = [[r["queue"] for r in iter_records(p)] for p in files]
    assert per_file == [["0", "1", "2"], ["3", "4", "5"], ["6"]]
    await sink.close()


async def test_segments_rotate_after_max_segment_duration_even_when_idle(
    tmp_path: Path,
) -> None:
    sink = configure(tmp_path, max_segment_duration=0.1)
    await sink.write_batch([record(queue="a")])
    (first,) = segments(tmp_path)
    for _ in range(100):
        if is_done(first):
            break
        await asyncio.sleep(0.02)
    assert is_done(first)  # finished by the timer, no new record needed
    await sink.write_batch([record(queue="b")])
    assert len(segments(tmp_path)) == 2
    await sink.close()
    assert [r["queue"] for r in iter_records(tmp_path)] == ["a", "b"]


async def test_per_record_suffix_and_log_dir_route_records_and_enable_false_skips(
    tmp_path: Path,
) -> None:
    bounces = tmp_path / "bounces"
    sink = configure(tmp_path / "main", per_record={
        "Reception": {"suffix": "_recv"},
        "Bounce": {"log_dir": str(bounces)},
        "Delayed": {"enable": False},
    })
    await sink.write_batch([record("Reception"), record("Delivery"), record("Bounce"),
                            record("Delayed")])
    await sink.close()
    main = segments(tmp_path / "main")
    assert sorted(p.name.endswith("_recv") for p in main) == [False, True]
    by_file = {p.name.endswith("_recv"): [r["type"] for r in iter_records(p)] for p in main}
    assert by_file == {True: ["Reception"], False: ["Delivery"]}
    assert [r["type"] for r in iter_records(bounces)] == ["Bounce"]
    assert all(is_done(p) for p in [*main, *segments(bounces)])


async def test_per_record_any_applies_to_types_without_their_own_entry(tmp_path: Path) -> None:
    sink = configure(tmp_path, per_record={"Any": {"enable": False},
                                           "Bounce": {"enable": True}})
    await sink.write_batch([record("Delivery"), record("Bounce")])
    await sink.close()
    assert [r["type"] for r in iter_records(tmp_path)] == ["Bounce"]


async def test_writable_segments_left_by_a_previous_run_are_marked_done_at_start(
    tmp_path: Path,
) -> None:
    leftover = tmp_path / "20240101-000000.000000000"
    leftover.write_bytes(b"")
    os.chmod(leftover, 0o644)
    plugin = LocalLogsPlugin()
    plugin.configure(log_dir=str(tmp_path))
    assert not is_done(leftover)  # loading a policy (kumocore validate) touches nothing
    (sink,) = plugin.kumo_register_log_sinks()  # the server starts logging
    assert is_done(leftover)
    await sink.close()


async def test_a_sink_prepares_its_directory_on_first_write(tmp_path: Path) -> None:
    sink = configure(tmp_path / "new" / "dir")
    assert not (tmp_path / "new").exists()
    await sink.write_batch([record()])
    await sink.close()
    assert len(list(iter_records(tmp_path / "new" / "dir"))) == 1


async def test_compression_level_is_applied(tmp_path: Path) -> None:
    records = [record(message=FakeMessage(meta={"x": "y" * 200}), queue=str(i))
               for i in range(50)]
    sizes = []
    for level in (1, 19):
        sink = configure(tmp_path / str(level), compression_level=level, meta=["x"])
        await sink.write_batch(records)
        await sink.close()
        sizes.append(segments(tmp_path / str(level))[0].stat().st_size)
        assert len(list(iter_records(tmp_path / str(level)))) == 50
    assert sizes[1] <= sizes[0]


async def test_writing_after_close_is_an_error(tmp_path: Path) -> None:
    sink = configure(tmp_path)
    await sink.close()
    await sink.close()  # idempotent
    with pytest.raises(RuntimeError):
        await sink.write_batch([record()])


def test_unknown_option_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_file_sise"):
        configure(tmp_path, max_file_sise=10)


def test_a_log_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        configure(tmp_path / "file")


def test_the_same_log_dir_cannot_be_configured_twice(tmp_path: Path) -> None:
    plugin = LocalLogsPlugin()
    plugin.configure(log_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="already configured"):
        plugin.configure(log_dir=str(tmp_path))


async def test_plugin_hooks_configure_register_feed_and_flush_on_shutdown(
    tmp_path: Path,
) -> None:
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("local_logs", LocalLogsPlugin)])
    hooks = Hooks(pm)
    functions = hooks.policy_functions()
    plugin_name, configure_local_logs = functions["configure_local_logs"]
    assert plugin_name == "local_logs"
    from kumocore import takes_table

    assert takes_table(configure_local_logs)
    configure_local_logs(log_dir=str(tmp_path), meta=["tenant"])
    sinks = hooks.log_sinks()
    assert [s.name for s in sinks] == [f"local_logs:{tmp_path}"]

    dispatcher = LogDispatcher(sinks, batch_latency=10.0)  # nothing written until close
    await dispatcher.start()
    dispatcher.submit(record(message=FakeMessage(meta={"tenant": "t"})))
    await dispatcher.close()
    (path,) = segments(tmp_path)
    assert is_done(path)
    assert [r["meta"] for r in iter_records(tmp_path)] == [{"tenant": "t"}]
    await hooks.shutdown()  # closing again is harmless


async def test_shutdown_hook_flushes_sinks_never_given_to_a_dispatcher(tmp_path: Path) -> None:
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("local_logs", LocalLogsPlugin)])
    hooks = Hooks(pm)
    hooks.policy_functions()["configure_local_logs"][1](log_dir=str(tmp_path))
    (sink,) = hooks.log_sinks()
    await sink.write_batch([record()])
    await hooks.shutdown()
    assert all(is_done(p) for p in segments(tmp_path))
