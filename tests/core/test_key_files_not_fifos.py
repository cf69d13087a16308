"""Key and certificate files a policy names (DKIM signing keys, ``kumo.secrets.load``,
a listener's TLS certificate): a FIFO is refused at once with an error naming the file,
instead of holding the event loop until some writer opens it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.dkim import keys as dkim_keys
from kumocore.dkim import make_dkim_functions
from kumocore.policy.secrets import load_secret
from kumocore.reception.tls import load_key_source
from tests.support.fifo import late_writer_fifo
from tests.support.ticker import LoopTicker


def _dkim_signer(path: str) -> Any:
    sign = make_dkim_functions()["dkim.rsa_sha256_signer"]
    return sign(domain="example.com", selector="s", headers=["From"], key=path)


CALLS: dict[str, Callable[[str], Any]] = {
    "kumo.dkim.rsa_sha256_signer": _dkim_signer,
    "kumo.secrets.load": load_secret,
    "tls_certificate": lambda path: load_key_source(path, key="tls_certificate"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_fifo_named_as_a_key_file_is_refused_without_stalling_the_loop(
    call: str, tmp_path: Path
) -> None:
    with late_writer_fifo(tmp_path / "key.pem", b"not a key") as fifo:
        async with LoopTicker() as ticker:
            with pytest.raises(ConfigError) as caught:
                CALLS[call](str(fifo))
    assert str(fifo) in str(caught.value)
    assert "not a regular file (a FIFO)" in str(caught.value)
    assert ticker.longest < 0.1  # waiting for the writer: 0.3 s


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_device_named_as_a_key_file_is_refused(call: str) -> None:
    with pytest.raises(ConfigError, match=r"'/dev/null'.*not a regular file"):
        CALLS[call]("/dev/null")  # /dev/zero: the old code read it without end


def test_a_dkim_key_file_past_the_bound_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.pem"
    big.write_bytes(b"k" * (dkim_keys.MAX_KEY_FILE + 1))
    with pytest.raises(ConfigError, match=f"larger than {dkim_keys.MAX_KEY_FILE} bytes"):
        dkim_keys.load_private_key(big)
