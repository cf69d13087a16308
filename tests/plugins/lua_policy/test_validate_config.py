"""validate_config / pre_init events and `kumocore validate` reporting validation_failed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from .support import REPO_ROOT, Recorder, make_runtime, write

KUMOCORE = Path(sys.executable).with_name("kumocore")


def validate(policy: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KUMOCORE), "validate", "--policy", str(policy)],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                          env={**os.environ, **env})


def test_validate_reports_each_validation_failed_with_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "helper.lua", """\
        local kumo = require 'kumo'
        local mod = {}
        kumo.on('validate_config', function()
          print('helper: data file is missing a pool')
          kumo.validation_failed()
        end)
        return mod
    """)
    policy = write(tmp_path, "policy.lua", """\
        local kumo = require 'kumo'
        local helper = require 'helper'
        kumo.on('init', function() end)
        kumo.on('validate_config', function()
          kumo.validation_failed('tenant "x" has no pool')
        end)
    """)
    result = validate(policy)
    assert result.returncode == 1, result.stderr
    assert "helper: data file is missing a pool" in result.stdout
    assert f"validation failed: {tmp_path / 'helper.lua'}:5: validation failed" in result.stderr
    assert f"validation failed: {tmp_path / 'policy.lua'}:5: tenant \"x\" has no pool" \
        in result.stderr


def test_validate_passes_when_handlers_find_nothing(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.lua", """\
        local kumo = require 'kumo'
        kumo.on('validate_config', function() print('checked') end)
    """)
    result = validate(policy)
    assert result.returncode == 0, result.stderr
    assert "checked" in result.stdout and "OK" in result.stdout


def test_python_policy_validate_config_hook(tmp_path: Path) -> None:
    policy = tmp_path / "policy.py"
    policy.write_text(textwrap.dedent("""\
        from kumocore import hookimpl

        @hookimpl
        def kumo_init(kumo):
            global KUMO
            KUMO = kumo

        @hookimpl
        def kumo_validate_config():
            KUMO.validation_failed("python says no")
    """))
    result = validate(policy)
    assert result.returncode == 1
    assert f"validation failed: {policy}:10: python says no" in result.stderr


async def test_pre_init_handlers_all_run_before_init_in_order(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime = make_runtime(recorder)
    await runtime.load(write(tmp_path, "policy.lua", """\
        local kumo = require 'kumo'
        kumo.on('init', function() kumo.test.mark('init') end)
        kumo.on('pre_init', function(...) kumo.test.mark('pre 1 ' .. select('#', ...)) end)
        kumo.on('pre_init', function() kumo.test.mark('pre 2') end)
        kumo.on('validate_config', function() kumo.test.mark('validate 1') end)
        kumo.on('validate_config', function() kumo.test.mark('validate 2') end)
    """))
    assert recorder.marks == ["pre 1 0", "pre 2", "init"]
    await runtime.hooks.validate_config()
    assert recorder.marks[3:] == ["validate 1", "validate 2"]
    assert not runtime.validation.failed


def test_validate_fails_when_a_queue_handler_is_registered_after_the_queue_helper(
    tmp_path: Path,
) -> None:
    # As KumoMTA's queue helper: its handler answers every domain ([queue.default]), so a
    # get_queue_config handler registered after it would never run.
    (tmp_path / "queues.toml").write_text('[queue.default]\nmax_age = "1 hour"\n')
    body = f"""\
        local kumo = require 'kumo'
        local queue_module = require 'policy-extras.queue'
        local helper = queue_module:setup {{ '{tmp_path / "queues.toml"}' }}
        kumo.on('get_queue_config', function(domain)
          return kumo.make_queue_config {{ max_age = '2 hours' }}
        end)
    """
    result = validate(write(tmp_path, "policy.lua", body))
    assert result.returncode == 1, result.stderr
    assert "not the last module to register for the" in result.stdout
    assert "policy.lua:4" in result.stdout
    # Registered first, the helper is last: no complaint.
    lines = body.splitlines(keepends=True)
    swapped = "".join([*lines[:2], *lines[3:6], lines[2]])
    result = validate(write(tmp_path, "policy.lua", swapped))
    assert result.returncode == 0, result.stdout + result.stderr
