"""Reliability section ``helpers``: hostile data files for the policy-extras helpers.

Each case writes a Lua policy that sets a helper up over a broken or malicious data file and
loads it as ``kumocore validate``/``serve`` would. It holds when loading fails with a
kumocore error (not a traceback) that names the data file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.reliability.bench import Bench

_POLICIES = {
    "sources": "require('policy-extras.sources'):setup { 'FILE' }",
    "listener_domains": "require('policy-extras.listener_domains'):setup { 'FILE' }",
    "dkim_sign": "require('policy-extras.dkim_sign'):setup { 'FILE' }",
    "queue": "require('policy-extras.queue'):setup { 'FILE' }",
    "shaping": "require('policy-extras.shaping'):setup { 'FILE' }",
    # A URL that fails, where the policy asks for remote failures to be errors.
    "shaping_remote": "require('kumo').shaping.load({ 'FILE' }, "
                      "{ remote_load = 'Error', http_timeout = '2s' })",
}

#: case -> (helper, file name, content)
CASES: dict[str, tuple[str, str, bytes]] = {
    "unknown key": ("sources", "s.toml", b'[source."a"]\nsource_adress = "10.0.0.1"\n'),
    "wrong type": ("listener_domains", "l.toml", b'["x.test"]\nrelay_to = "yes"\n'),
    "bad duration": ("queue", "q.toml", b'[queue.default]\nmax_age = "forever"\n'),
    "missing key file": ("dkim_sign", "d.toml", b'[domain."x.test"]\nselector = "s"\n'
                         b'filename = "/nonexistent/x.key"\n'),
    "pool names unknown source": ("sources", "s.toml", b'[pool."p"."ghost"]\n'),
    "invalid TOML": ("shaping", "h.toml", b'["x.test"\nconnection_limit = 1\n'),
    "invalid UTF-8": ("shaping", "h.toml", b'["x.test"]\nehlo_domain = "\xff\xfe"\n'),
    "JSON nested 100k deep": ("listener_domains", "l.json", b"[" * 100_000 + b"]" * 100_000),
    "JSON top level not a table": ("sources", "s.json", b"[1, 2, 3]"),
    "automation regex invalid": ("shaping", "h.toml", b'[["x.test".automation]]\n'
                                 b'regex = "(unclosed"\naction = "Suspend"\nduration = "1h"\n'),
    "shaping URL that refuses (remote_load = 'Error')": ("shaping_remote", "h.toml", b""),
}  # fmt: skip


async def section_helpers(bench: Bench) -> None:
    from kumocore.errors import ConfigError, HookError, PolicyError
    from kumocore.node.runtime import Runtime

    for case, (helper, name, content) in CASES.items():
        directory = Path(tempfile.mkdtemp(dir=bench.workdir))
        data = directory / name
        data.write_bytes(content)
        remote = helper == "shaping_remote"
        target = "http://127.0.0.1:9/shaping.toml" if remote else str(data)
        policy = directory / "policy.lua"
        policy.write_text(_POLICIES[helper].replace("FILE", target) + "\n")
        try:
            await Runtime(load_entrypoints=True).load(policy)
        except (ConfigError, PolicyError, HookError) as exc:
            named = target in str(exc)
            bench.hostile(
                "helpers", case, named, "" if named else f"error does not name the file: {exc}"
            )
        except Exception as exc:  # a traceback for the operator: not held
            bench.hostile("helpers", case, False, f"{type(exc).__name__} escapes: {exc}")
        else:
            bench.hostile("helpers", case, False, "the policy loaded")
