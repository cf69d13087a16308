"""``kumocore sink``: a local SMTP server that stands in for a recipient's mail server.

For trying kumocore out (the README's first delivery) and for tests: it accepts every
message, saves each one byte for byte as ``<dir>/<n>.eml`` and prints one line per
message. Given the DKIM private key kumocore signs with, it also checks each signature
against that key's public half, as a receiver would against the DNS record.
Not a mail server: no relay control and no authentication, so it listens only on
loopback unless told otherwise. Every resource a client could use up is bounded (message
size, line length, idle and session time, connections, recipients: :mod:`kumocore.node.sink_smtp`;
messages and bytes kept on disk: here), each with a flag.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumocore.config.cidr import split_host_port
from kumocore.node.sink_smtp import Envelope, SinkLimits, SinkServer

if TYPE_CHECKING:
    import argparse

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


class _Store:
    """Saves messages as ``<n>.eml`` in a directory, up to a count and a byte total (the
    files already there count too): past either, a message is refused with 452 4.3.1."""

    def __init__(self, directory: Path, key_file: Path | None, limits: StoreLimits) -> None:
        self.directory = directory
        self.key_file = key_file
        self.limits = limits
        existing = list(directory.glob("*.eml"))
        self.count = len(existing)
        self.bytes = sum(path.stat().st_size for path in existing)

    async def deliver(self, envelope: Envelope, data: bytes) -> str | None:
        if self.count + 1 > self.limits.max_messages:
            return f"452 4.3.1 sink full: it keeps {self.limits.max_messages} messages"
        if self.bytes + len(data) > self.limits.max_bytes:
            return f"452 4.3.1 sink full: it keeps {self.limits.max_bytes} bytes"
        self.count += 1
        self.bytes += len(data)
        path = self.directory / f"{self.count:05d}.eml"
        path.write_bytes(data)
        line = (f"sink: message {self.count} from <{envelope.sender}> to "
                f"{', '.join(f'<{r}>' for r in envelope.recipients)}, {len(data)} bytes, "
                f"saved as {path}")  # fmt: skip
        if self.key_file is not None:
            line += "; " + dkim_verdict(data, self.key_file)
        print(line, flush=True)
        return None


@dataclass(frozen=True)
class StoreLimits:
    max_messages: int = 10_000
    max_bytes: int = 1024 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """Whether a listen host is a loopback address (``localhost`` counts; other names not,
    since what they resolve to can change)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def run_sink(
    listen: str,
    directory: Path,
    key_file: Path | None,
    limits: SinkLimits | None = None,
    store_limits: StoreLimits | None = None,
    *,
    allow_non_loopback: bool = False,
) -> int:
    host, port = split_host_port(listen)
    if not allow_non_loopback and not is_loopback(host):
        print(f"kumocore sink: error: refusing to listen on {listen}: not a loopback address. "
              "The sink accepts mail from anyone who reaches it (no relay control, no "
              "authentication); pass --allow-non-loopback to listen there anyway",
              file=sys.stderr)  # fmt: skip
        return 2
    directory.mkdir(parents=True, exist_ok=True)
    store = _Store(directory, key_file, store_limits or StoreLimits())
    server = SinkServer(limits or SinkLimits(), store.deliver)
    try:
        listener = await server.start(host, port)
    except OSError as exc:
        print(f"kumocore sink: error: cannot listen on {listen}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"sink: listening on {listen}, saving messages in {directory}", flush=True)
    async with listener:
        await stop.wait()
    return 0


def _listen_address(text: str) -> str:
    """``--listen``: HOST:PORT as every kumocore listener reads it (an IPv6 host in
    brackets), with a port to listen on (not 0)."""
    import argparse

    try:
        _, port = split_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN}): {exc}") from None
    if not port:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must not be 0")
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
    _add_limit_flags(sink)
    sink.set_defaults(handler=_main)


#: Each bound's flag: (flag, SinkLimits or StoreLimits field, metavar, what happens past it).
_BOUND_FLAGS = [
    ("--max-message-size", "max_message_bytes", "BYTES", "larger messages get 552 5.3.4"),
    ("--max-line-length", "max_line_bytes", "OCTETS",
     "longer lines (CRLF included) get 500 5.5.2"),
    ("--idle-timeout", "idle_timeout", "SECONDS", "a client silent this long gets 421 4.4.2"),
    ("--session-timeout", "session_timeout", "SECONDS",
     "a connection open this long gets 421 4.4.2"),
    ("--max-connections", "max_connections", "N", "connections beyond N get 421 4.7.0"),
    ("--max-recipients", "max_recipients", "N",
     "recipients beyond N in a message get 452 4.5.3"),
    ("--max-stored-messages", "max_messages", "N",
     "messages kept in DIR (those there count); beyond, 452 4.3.1"),
    ("--max-stored-bytes", "max_bytes", "BYTES",
     "bytes kept in DIR (those there count); beyond, 452 4.3.1"),
]  # fmt: skip


def _add_limit_flags(sink: argparse.ArgumentParser) -> None:
    defaults = {**asdict(SinkLimits()), **asdict(StoreLimits())}
    bounds = sink.add_argument_group("bounds (what one client can use up)")
    for flag, name, metavar, text in _BOUND_FLAGS:
        default = defaults[name]
        bounds.add_argument(flag, dest=name, type=_positive(type(default)), default=default,
                            metavar=metavar, help=text)  # fmt: skip
    bounds.add_argument("--allow-non-loopback", action="store_true",
                        help="listen on an address other than loopback (anyone who reaches "
                        "it can send mail to the sink)")  # fmt: skip


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    import argparse

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            number = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {number}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
        return value

    return parse


def _main(args: Any) -> int:
    limits = SinkLimits(**{f.name: getattr(args, f.name) for f in fields(SinkLimits)})
    store = StoreLimits(**{f.name: getattr(args, f.name) for f in fields(StoreLimits)})
    return asyncio.run(run_sink(args.listen, args.dir, args.dkim_key, limits, store,
                                allow_non_loopback=args.allow_non_loopback))  # fmt: skip
