"""Tearing down runtimes is safe however Lua values were used (a crash would be a segfault).

lupa ties each Lua value handed to Python to the stack it came from; if Python keeps one
from a coroutine's stack (a handler registered with kumo.on, a value in a traceback) and
releases it after Lua collected that coroutine, lupa touches freed memory. The bridge
re-binds kept values to the main state and scrubs tracebacks; this runs the risky
patterns many times in a child process, then collects everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.plugins.lua_policy.support import REPO_ROOT

SCRIPT = textwrap.dedent('''
    import asyncio, gc, sys, tempfile
    from pathlib import Path
    from kumocore import PolicyError, Rejection
    from kumocore.mail.address import parse_envelope_address
    from tests.plugins.lua_policy.support import load

    POLICY = """
    local kumo = require 'kumo'
    local cache = {}
    kumo.on('smtp_server_ehlo', function(domain, conn_meta)
      collectgarbage()  -- free finished coroutines now, while Python still holds values
      conn_meta:set_meta('t', { list = { 1, 2 }, f = 'x' })
      cache[#cache + 1] = kumo.make_queue_config { egress_pool = domain }
      if domain == 'err' then local t = nil; return t.x end
      if domain == 'cfg' then kumo.make_queue_config { nonsense = { 1 } } end
      if domain == 'rej' then kumo.reject(550, 'no') end
      if domain == 'pos' then kumo.make_queue_config('a', { 1 }) end
      if domain == 'cyc' then local t = {}; t.t = t; conn_meta.loop = t end
      pcall(kumo.make_egress_path, { bogus = {} })
    end)
    kumo.on('get_queue_config', function() return nil end)
    kumo.on('get_queue_config', function(d) return { egress_pool = d } end)
    """

    kept = []

    async def once(directory):
        runtime, policy = await load(directory, POLICY)
        for domain in ('err', 'cfg', 'rej', 'pos', 'cyc', 'ok', 'ok'):
            try:
                await runtime.hooks.smtp_server_ehlo(domain, {})
            except (PolicyError, Rejection) as exc:
                kept.append(exc.__cause__ or exc)  # the cause alone: no frame of the driver
        await runtime.hooks.get_queue_config('d', None, None, None)

    for _ in range(25):
        asyncio.run(once(Path(tempfile.mkdtemp())))
        gc.collect()
    kept.clear()
    gc.collect()
    print('clean exit')
''')


@pytest.mark.slow
def test_runtimes_tear_down_cleanly_after_errors(tmp_path: Path) -> None:
    # glibc fills freed memory with a pattern: a use-after-free crashes reliably.
    env = {**os.environ, "MALLOC_PERTURB_": "165", "PYTHONMALLOC": "malloc"}
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", SCRIPT],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "clean exit" in result.stdout
