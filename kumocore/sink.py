"""``kumocore sink``: a local SMTP server that stands in for a recipient's mail server.

For trying kumocore out (the README's first delivery) and for tests: it accepts every
message, saves each one byte for byte as ``<dir>/<n>.eml`` and prints one line per
message. Given the DKIM private key kumocore signs with, it also checks each signature
against that key's public half, as a receiver would against the DNS record.
Not a mail server: no relay control, no limits; bind it to loopback.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from aiosmtpd.smtp import SMTP, Envelope, Session

    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_LISTEN = "127.0.0.1:2526"


def dkim_dns_record(private_key_pem: bytes) -> bytes:
    """The ``<selector>._domainkey`` TXT record that publishes a private key's public half."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_key_pem, password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dkim_verdict(message: bytes, key_file: Path) -> str:
    """``DKIM pass d=... s=...`` or ``DKIM fail ...``, checked against ``key_file``."""
    import dkim

    if b"\ndkim-signature:" not in b"\n" + message.lower().split(b"\r\n\r\n", 1)[0]:
        return "DKIM none (no signature)"
    try:
        record = dkim_dns_record(key_file.read_bytes())
    except (OSError, ValueError) as exc:
        return f"DKIM not checked: cannot read the key {key_file}: {exc}"
    verifier = dkim.DKIM(message)
    try:
        ok, why = verifier.verify(dnsfunc=lambda name, timeout=5: record), ""
    except dkim.DKIMException as exc:
        ok, why = False, f" ({exc})"
    domain = (verifier.domain or b"").decode(errors="replace")
    selector = (verifier.selector or b"").decode(errors="replace")
    return f"DKIM {'pass' if ok else 'fail'} d={domain} s={selector}{why}"


class _Handler:
    def __init__(self, directory: Path, key_file: Path | None) -> None:
        self.directory = directory
        self.key_file = key_file
        self.count = len(list(directory.glob("*.eml")))

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        self.count += 1
        path = self.directory / f"{self.count:05d}.eml"
        path.write_bytes(data)
        line = (f"sink: message {self.count} from <{envelope.mail_from}> to "
                f"{', '.join(f'<{r}>' for r in envelope.rcpt_tos)}, {len(data)} bytes, "
                f"saved as {path}")  # fmt: skip
        if self.key_file is not None:
            line += "; " + dkim_verdict(data, self.key_file)
        print(line, flush=True)
        return "250 2.0.0 OK: saved by kumocore sink"


async def run_sink(listen: str, directory: Path, key_file: Path | None) -> int:
    import logging

    from aiosmtpd.smtp import SMTP

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command lines
    host, _, port = listen.rpartition(":")
    directory.mkdir(parents=True, exist_ok=True)
    handler = _Handler(directory, key_file)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.kumocore.test", decode_data=False),
            host.strip("[]") or "127.0.0.1", int(port),
        )
    except OSError as exc:
        print(f"kumocore sink: error: cannot listen on {listen}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"sink: listening on {listen}, saving messages in {directory}", flush=True)
    async with server:
        await stop.wait()
    return 0


def _listen_address(text: str) -> str:
    import argparse

    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    return text


def add_sink_subcommand(commands: Subcommands) -> None:
    import argparse

    sink = commands.add_parser(
        "sink",
        help="a local SMTP server that saves what it receives (for trying kumocore out)",
        description="Accept every message on HOST:PORT, save it byte for byte in DIR and "
        "print one line per message; with --dkim-key, check its DKIM signature against "
        "that private key's public half. Example: kumocore sink --dir var/sink "
        "--dkim-key var/dkim.pem",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sink.add_argument("--listen", default=DEFAULT_LISTEN, type=_listen_address,
                      help="address to listen on")  # fmt: skip
    sink.add_argument("--dir", default="sink", type=Path, help="where to save messages")
    sink.add_argument("--dkim-key", type=Path, default=None,
                      help="PEM private key the sender signs with: check signatures")  # fmt: skip
    sink.set_defaults(handler=_main)


def _main(args: Any) -> int:
    return asyncio.run(run_sink(args.listen, args.dir, args.dkim_key))
