"""Binary Lua strings through ``kumo.encode.*`` and ``kumo.digest.*``.

Lua strings are byte strings. As in KumoMTA, the encoders and digests take the raw bytes of
a string that is not valid UTF-8 (``string.char(0xff)``, a digest's ``.bytes``, the result
of ``base64_decode``), and the decoders give raw bytes back to Lua.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from kumocore import PolicyError

from .support import Recorder, load

EVERY_BYTE = bytes(range(256))
SAMPLE = bytes([0, 255, 128, 10])

#: Lua building the same values: ``every_byte`` (0..255 in order) and ``sample``.
PRELUDE = """\
    local kumo = require 'kumo'
    local chars = {}
    for i = 0, 255 do chars[#chars + 1] = string.char(i) end
    local every_byte = table.concat(chars)
    local sample = string.char(0, 255, 128, 10)
"""


def _nopad(encode: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    return lambda data: encode(data).rstrip(b"=")


def _b32hex(data: bytes) -> bytes:
    return base64.b32hexencode(data)


ENCODINGS: dict[str, Callable[[bytes], bytes]] = {
    "base32": base64.b32encode,
    "base32_nopad": _nopad(base64.b32encode),
    "base32hex": _b32hex,
    "base32hex_nopad": _nopad(_b32hex),
    "base64": base64.b64encode,
    "base64_nopad": _nopad(base64.b64encode),
    "base64url": base64.urlsafe_b64encode,
    "base64url_nopad": _nopad(base64.urlsafe_b64encode),
    "hex": lambda data: data.hex().encode("ascii"),
}

DIGESTS = ["sha1", "sha224", "sha256", "sha384", "sha512", "sha512_256",
           "sha3_256", "sha3_384", "sha3_512"]


async def _marks(tmp_path: Path, body: str) -> list[object]:
    recorder = Recorder()
    await load(tmp_path, PRELUDE + body, recorder=recorder)
    return recorder.marks


async def test_base64_encode_takes_the_raw_bytes_of_a_binary_string(tmp_path: Path) -> None:
    marks = await _marks(tmp_path, """\
        kumo.test.mark(kumo.encode.base64_encode(sample))
        kumo.test.mark(kumo.encode.base64_encode(string.char(0xff, 0x00)))
    """)
    assert marks == [base64.b64encode(SAMPLE).decode(), base64.b64encode(b"\xff\x00").decode()]


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
async def test_a_string_with_every_byte_value_round_trips_through_each_encoding(
    tmp_path: Path, encoding: str
) -> None:
    marks = await _marks(tmp_path, f"""\
        local encode, decode = kumo.encode.{encoding}_encode, kumo.encode.{encoding}_decode
        local encoded = encode(every_byte)
        kumo.test.mark(encoded)
        local decoded = decode(encoded)
        kumo.test.mark(decoded == every_byte)
        kumo.test.mark(#decoded)
        kumo.test.mark(decode(encode(sample)) == sample)
    """)
    assert marks == [ENCODINGS[encoding](EVERY_BYTE).decode("ascii"), True, 256, True]


async def test_decoded_binary_reaches_lua_as_its_raw_bytes(tmp_path: Path) -> None:
    # Every byte value comes back at its place: no replacement characters, no UTF-8.
    marks = await _marks(tmp_path, f"""\
        local decoded = kumo.encode.base64_decode('{base64.b64encode(EVERY_BYTE).decode()}')
        local same = #decoded == 256
        for i = 1, #decoded do same = same and decoded:byte(i) == i - 1 end
        kumo.test.mark(same)
        kumo.test.mark(kumo.encode.hex_encode(decoded))
    """)
    assert marks == [True, EVERY_BYTE.hex()]


async def test_hex_encode_of_a_digest_bytes_field_is_the_digest_hex(tmp_path: Path) -> None:
    marks = await _marks(tmp_path, """\
        local d = kumo.digest.sha256('x')
        kumo.test.mark(kumo.encode.hex_encode(d.bytes))
        kumo.test.mark(kumo.encode.base64_encode(d.bytes) == d.base64)
        kumo.test.mark(#d.bytes)
    """)
    assert marks == [hashlib.sha256(b"x").hexdigest(), True, 32]


async def test_hex_encode_of_a_uuids_bytes_is_its_simple_form(tmp_path: Path) -> None:
    marks = await _marks(tmp_path, """\
        local u = kumo.uuid.parse '69994630-3e27-11ef-91fc-cc28aa0a5c5a'
        kumo.test.mark(kumo.encode.hex_encode(u.bytes) == u.simple)
    """)
    assert marks == [True]


@pytest.mark.parametrize("algorithm", DIGESTS)
async def test_digests_hash_the_raw_bytes_of_a_binary_string(
    tmp_path: Path, algorithm: str
) -> None:
    marks = await _marks(tmp_path, f"""\
        kumo.test.mark(kumo.digest.{algorithm}(every_byte).hex)
        kumo.test.mark(kumo.digest.{algorithm}(sample).hex)
    """)
    assert marks == [hashlib.new(algorithm, EVERY_BYTE).hexdigest(),
                     hashlib.new(algorithm, SAMPLE).hexdigest()]


async def test_crc32_of_a_binary_string_is_zlibs(tmp_path: Path) -> None:
    marks = await _marks(tmp_path, "kumo.test.mark(kumo.digest.crc32(every_byte).hex)\n")
    assert marks == [zlib.crc32(EVERY_BYTE).to_bytes(4, "big").hex()]


async def test_a_digest_of_text_and_binary_arguments_hashes_them_in_turn(
    tmp_path: Path
) -> None:
    marks = await _marks(tmp_path, """\
        kumo.test.mark(kumo.digest.sha256('h\\u{e9}llo', sample, 'x', every_byte).hex)
    """)
    expected = hashlib.sha256("h\u00e9llo".encode() + SAMPLE + b"x" + EVERY_BYTE)
    assert marks == [expected.hexdigest()]


async def test_a_digest_of_a_digests_bytes_hashes_the_raw_digest(tmp_path: Path) -> None:
    marks = await _marks(tmp_path, """\
        kumo.test.mark(kumo.digest.sha256(kumo.digest.sha256('x').bytes).hex)
    """)
    assert marks == [hashlib.sha256(hashlib.sha256(b"x").digest()).hexdigest()]


async def test_large_binary_and_text_strings_are_hashed_whole(tmp_path: Path) -> None:
    marks = await _marks(tmp_path, """\
        kumo.test.mark(kumo.digest.sha1(string.rep(every_byte, 1000)).hex)
        kumo.test.mark(kumo.digest.sha1(string.rep('h\\u{e9}llo ', 1000), every_byte).hex)
    """)
    text = "h\u00e9llo ".encode() * 1000
    assert marks == [hashlib.sha1(EVERY_BYTE * 1000).hexdigest(),
                     hashlib.sha1(text + EVERY_BYTE).hexdigest()]


async def test_hmac_takes_a_binary_key_and_a_binary_message(tmp_path: Path) -> None:
    marks = await _marks(tmp_path, """\
        local key = kumo.digest.sha256('secret').bytes
        kumo.test.mark(kumo.digest.hmac_sha256({ key_data = key }, 'message').hex)
        kumo.test.mark(kumo.digest.hmac_sha1({ key_data = sample }, every_byte).hex)
    """)
    key = hashlib.sha256(b"secret").digest()
    assert marks == [hmac.new(key, b"message", "sha256").hexdigest(),
                     hmac.new(SAMPLE, EVERY_BYTE, "sha1").hexdigest()]


async def test_charset_decode_reads_the_raw_bytes_of_its_input(tmp_path: Path) -> None:
    marks = await _marks(tmp_path, """\
        kumo.test.mark(kumo.encode.charset_decode('latin1', 'caf' .. string.char(0xe9)))
    """)
    assert marks == ["caf\u00e9"]


async def test_decoding_binary_garbage_is_an_invalid_input_error_at_the_policy_line(
    tmp_path: Path
) -> None:
    with pytest.raises(PolicyError) as info:
        await _marks(tmp_path, "kumo.encode.base64_decode(sample)\n")
    assert "kumo.encode.base64_decode: invalid input" in str(info.value)
    line = PRELUDE.count("\n") + 1
    assert info.value.where == f"{tmp_path / 'policy.lua'}:{line}"
