"""A careless KeySource: ``{ key = '/dev/zero' }`` (or a name taken from traffic that
names a huge file) for ``kumo.crypto.aes_*`` and ``aws_sign_v4``. Only a regular file is
read, and only up to a bound, so such a name is a clear error rather than memory without
end. The call runs in a child process with its address space capped, so that reading without a
bound fails fast there instead of eating the test machine's memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """\
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from kumocore import ConfigError
    from kumocore_lua_policy.stdlib import crypto, sigv4
    calls = {
        "aes": lambda: crypto.aes_encrypt_block("Ecb", "x", {"key": sys.argv[1]}),
        "sigv4": lambda: sigv4.aws_sign_v4(
            access_key={"key_data": "AKID"}, secret_key=sys.argv[1], region="us-east-1",
            service="s3", uri="/", method="GET"),
    }
    try:
        calls[sys.argv[2]]()
    except ConfigError as exc:
        print(exc)
    """
)


def refusal(key_file: str, call: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, key_file, call],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-500:]
    return done.stdout


@pytest.mark.parametrize("call", ["aes", "sigv4"])
def test_an_endless_key_file_is_refused_with_its_name_unread(call: str) -> None:
    error = refusal("/dev/zero", call)
    assert "key file '/dev/zero': not a regular file (a character device)" in error


def test_a_key_file_just_past_the_bound_is_refused_and_one_at_it_read(tmp_path: Path) -> None:
    big = tmp_path / "big.key"
    big.write_bytes(b"k" * 65537)
    assert "is larger than 65536 bytes" in refusal(str(big), "aes")
    big.write_bytes(b"k" * 65536)
    assert "Key length must be 16 or 32 bytes, got 65536" in refusal(str(big), "aes")
