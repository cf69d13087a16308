"""``bench.perf.run --baseline TREE``: another checkout's kumocore, side by side.

A comparison of two trees is only worth something if each side really runs its own code.
``python -m`` puts the working directory ahead of ``PYTHONPATH``, so a side started from
this checkout runs this checkout's core whatever ``PYTHONPATH`` says; these tests hold the
harness to starting the baseline in its own tree, with its own plugins first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.perf.baseline import expand_sides
from bench.perf.kumocore_side import REPO, KumocoreInstance, KumocoreSettings
from bench.perf.load import missing_tools


def _fake_tree(root: Path) -> Path:
    (root / "kumocore").mkdir(parents=True)
    (root / "kumocore" / "__init__.py").write_text("")
    for plugin in ("rocksdb_spool", "local_logs"):
        (root / "plugins" / plugin).mkdir(parents=True)
    return root


def test_each_kumocore_side_gets_its_baseline_twin_right_after_it(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path / "base")
    sides = expand_sides(["postfix", "kumocore", "haraka", "kumocore+dkim"], tree)
    assert sides == ["postfix", "kumocore", "baseline", "haraka", "kumocore+dkim",
                     "baseline+dkim"]
    assert expand_sides(["kumocore", "baseline"], tree) == ["kumocore", "baseline"]
    assert expand_sides(["postfix", "kumocore"], None) == ["postfix", "kumocore"]


def test_a_baseline_side_without_a_baseline_tree_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown sides"):
        expand_sides(["kumocore", "baseline"], None)


def test_a_baseline_that_is_not_a_kumocore_checkout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a kumocore checkout"):
        expand_sides(["kumocore"], tmp_path)


def test_the_baseline_instance_starts_in_its_tree_with_its_plugins_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _fake_tree(tmp_path / "base")
    monkeypatch.setenv("PYTHONPATH", "/already/there")
    settings = KumocoreSettings(sink_port=1, dns="127.0.0.1:53", http=False, tree=tree)
    instance = KumocoreInstance(tmp_path / "side", settings)
    assert instance.working_directory() == tree
    assert instance.environment()["PYTHONPATH"].split(os.pathsep) == [
        str(tree), str(tree / "plugins" / "local_logs"), str(tree / "plugins" / "rocksdb_spool"),
        "/already/there",
    ]
    ours = KumocoreInstance(tmp_path / "ours", KumocoreSettings(sink_port=1, dns="x", http=False))
    assert ours.working_directory() == REPO
    assert ours.environment().get("PYTHONPATH") == os.environ.get("PYTHONPATH")


def test_a_baseline_without_a_plugin_of_this_checkout_blocks_it_and_keeps_rocksdb_spools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tree from before the LMDB plugin: its core could not import the installed
    plugin (the run failed at start), and its bodies stay in RocksDB as they were."""
    tree = _fake_tree(tmp_path / "base")  # rocksdb_spool and local_logs only
    monkeypatch.setenv("KUMOCORE_BLOCK_PLUGINS", "someone_elses")
    settings = KumocoreSettings(sink_port=1, dns="127.0.0.1:53", http=False, tree=tree)
    env = KumocoreInstance(tmp_path / "side", settings).environment()
    blocked = env["KUMOCORE_BLOCK_PLUGINS"].split(",")
    assert blocked[0] == "someone_elses"
    assert {"hello", "webhook_sink"} <= set(blocked)  # the examples `make test` installs
    assert "lmdb_spool" in blocked and "rocksdb_spool" not in blocked
    assert "local_logs" not in blocked
    assert env["KUMOCORE_BENCH_DATA_KIND"] == "RocksDB"
    (tree / "plugins" / "lmdb_spool").mkdir()
    env = KumocoreInstance(tmp_path / "side2", settings).environment()
    assert "lmdb_spool" not in env["KUMOCORE_BLOCK_PLUGINS"].split(",")
    assert env["KUMOCORE_BENCH_DATA_KIND"] == "LMDB"
    # A tree whose LMDB spools cannot share an environment keeps its envelopes in RocksDB.
    assert env["KUMOCORE_BENCH_META_KIND"] == "RocksDB"
    ours = KumocoreInstance(tmp_path / "ours", KumocoreSettings(sink_port=1, dns="x", http=False))
    assert ours.environment()["KUMOCORE_BENCH_DATA_KIND"] == "LMDB"
    assert ours.environment()["KUMOCORE_BENCH_META_KIND"] == "LMDB"
    assert ours.environment()["KUMOCORE_BLOCK_PLUGINS"] == "someone_elses,hello,webhook_sink"


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(
    bool(missing_tools()),
    reason=f"Postfix tools missing: {', '.join(missing_tools())} (apt-get install postfix)",
)
def test_the_harness_runs_the_baseline_checkouts_own_code_beside_this_one(
    tmp_path: Path,
) -> None:
    # A copy of this checkout's core and plugins is the baseline (what the harness needs
    # of a checkout), with one line added that only the copy has: a marker written on
    # import proves which tree the baseline's processes ran.
    tree = tmp_path / "baseline"
    skip = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "*.so")
    shutil.copytree(REPO / "kumocore", tree / "kumocore", ignore=skip)
    shutil.copytree(REPO / "plugins", tree / "plugins", ignore=skip)
    marker = tmp_path / "imported-from"
    with (tree / "kumocore" / "__init__.py").open("a") as init:
        init.write("\nimport os as _os\n_mark = _os.environ.get('BENCH_BASELINE_MARKER')\n"
                   "if _mark:\n    open(_mark, 'a').write(__file__ + '\\n')\n")
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.perf.run", "--mode", "short", "--only", "e2e",
         "--sides", "kumocore", "--baseline", str(tree), "--sizes", "2048",
         "--count", "200", "--repeats", "1", "--warmup", "10", "--timeout", "30",
         "--json", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=175, check=False,
        env={**os.environ, "BENCH_BASELINE_MARKER": str(marker)},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert re.search(r"^kumocore/baseline at 2 KB: \d+\.\d\d, CPU ", proc.stdout, re.M), output
    data = json.loads(report.read_text())
    assert {run["side"]: run["received"] for run in data["e2e"]} == {
        "kumocore": 200, "baseline": 200}, output
    assert all(check["queued_on_disk"] for check in data["samples"]), output
    imported = set(marker.read_text().split())
    assert imported == {str(tree / "kumocore" / "__init__.py")}, imported


def test_the_benchmarked_server_runs_without_any_example_plugin_of_docs_examples() -> None:
    """`make test` installs the example plugins and CI benchmarks in that environment;
    every entry point they declare is blocked, so a new example cannot slip into a run."""
    import tomllib

    from bench.common.serve_process import BLOCKED_PLUGINS

    declared = set()
    for project in (REPO / "docs" / "examples").glob("*/pyproject.toml"):
        points = tomllib.loads(project.read_text())["project"].get("entry-points", {})
        declared |= set(points.get("kumocore", {}))
    assert declared == {"hello", "webhook_sink"}
    assert set(BLOCKED_PLUGINS.split(",")) == declared
