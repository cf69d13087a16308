"""Files a Lua policy names (``kumo.crypto`` and ``kumo.digest.hmac_*`` keys,
``kumo.serde.*_load``, the policy-extras helpers' data files, bounce classifier rules):
a FIFO is refused at once with an error naming the file, instead of holding the event loop
until some writer opens it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kumocore_bounce_classifier.rules import load_rules
from kumocore_lua_policy.extras.datafile import load_data_file
from kumocore_lua_policy.stdlib import crypto, serde
from kumocore_lua_policy.stdlib.codec import digest_functions

from kumocore import ConfigError
from tests.support.fifo import late_writer_fifo
from tests.support.ticker import LoopTicker

CALLS: dict[str, Callable[[str], Any]] = {
    "kumo.crypto.aes_encrypt_block": lambda path: crypto.aes_encrypt_block(
        "Ecb", "x", {"key": path}
    ),
    "kumo.digest.hmac_sha256": lambda path: digest_functions()["digest.hmac_sha256"](path, "x"),
    "kumo.serde.json_load": serde.json_load,
    "kumo.serde.toml_load": serde.toml_load,
    "kumo.serde.yaml_load": serde.yaml_load,
    "policy-extras data file": lambda path: load_data_file("shaping", path),
    "bounce classifier rules": load_rules,
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_fifo_named_by_a_policy_is_refused_without_stalling_the_loop(
    call: str, tmp_path: Path
) -> None:
    with late_writer_fifo(tmp_path / "named.toml", b"{}") as fifo:
        async with LoopTicker() as ticker:
            with pytest.raises(ConfigError) as caught:
                CALLS[call](str(fifo))
    assert str(fifo) in str(caught.value)
    assert "not a regular file (a FIFO)" in str(caught.value)
    assert ticker.longest < 0.1  # waiting for the writer: 0.3 s


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_device_named_by_a_policy_is_refused(call: str) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        CALLS[call]("/dev/null")  # /dev/zero: some of them read it without end
