"""Verify a message with ``opendkim-testmsg`` without touching real DNS.

``opendkim-testmsg`` has no option for a test key: libopendkim looks the key up with the
libc resolver, which only reads ``/etc/resolv.conf`` and only talks to port 53. So this
module re-runs itself inside private mount and network namespaces (``unshare``): there it
brings up a loopback interface nobody else can see, bind-mounts a resolv.conf that points
at ``127.0.0.1``, serves the key TXT records on ``127.0.0.1:53`` with dnslib, and runs
``opendkim-testmsg`` against that. Nothing outside the namespace is changed, and no packet
can leave it (the namespace has no interface but ``lo``).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

OPENDKIM = "/usr/sbin/opendkim-testmsg"


@functools.cache
def unavailable_reason() -> str | None:
    """Why opendkim verification cannot run here, or None when it can."""
    if not os.path.exists(OPENDKIM):
        return "opendkim-testmsg is not installed"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare/ip are not available"
    probe = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        return f"cannot create mount+net namespaces: {probe.stderr.decode().strip()}"
    return None


def opendkim_verify(message: bytes, records: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Run ``opendkim-testmsg`` on ``message`` with ``records`` (name -> TXT) as DNS.

    ``returncode`` 0 means every signature verified; stderr carries opendkim's complaint.
    """
    return subprocess.run(
        ["unshare", "--mount", "--net", sys.executable, __file__, json.dumps(records)],
        input=message,
        capture_output=True,
        timeout=30,
    )


def _serve(records: dict[str, str]) -> None:
    from dnslib import QTYPE, RCODE, RR, TXT
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    zone = {name.lower().rstrip("."): value.encode() for name, value in records.items()}

    class Resolver(BaseResolver):  # type: ignore[misc]
        def resolve(self, request: object, handler: object) -> object:
            reply = request.reply()  # type: ignore[attr-defined]
            name = str(request.q.qname).lower().rstrip(".")  # type: ignore[attr-defined]
            value = zone.get(name)
            if value is None:
                reply.header.rcode = RCODE.NXDOMAIN
            elif request.q.qtype == QTYPE.TXT:  # type: ignore[attr-defined]
                chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
            return reply

    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data")
    for tcp in (False, True):
        server = DNSServer(Resolver(), address="127.0.0.1", port=53, tcp=tcp, logger=quiet)
        threading.Thread(target=server.server.serve_forever, daemon=True).start()


def _main() -> int:
    # Runs as root inside the fresh namespaces created by opendkim_verify().
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".resolv.conf", delete=False) as conf:
        conf.write("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    subprocess.run(["mount", "--bind", conf.name, "/etc/resolv.conf"], check=True)
    try:
        _serve(json.loads(sys.argv[1]))
        result = subprocess.run([OPENDKIM], stdin=sys.stdin.buffer, capture_output=True)
        sys.stdout.buffer.write(result.stdout)
        sys.stderr.buffer.write(result.stderr)
        return result.returncode
    finally:
        os.unlink(conf.name)


if __name__ == "__main__":
    sys.exit(_main())
