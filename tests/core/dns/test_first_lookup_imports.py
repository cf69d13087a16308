"""The first lookups of a fresh process import nothing on the event loop: dnspython's
asyncio backend, ``sniffio`` and the record-type modules are imported when the resolver is
built (at start-up, before listening), not in the middle of the first deliveries.

Run in a child process: this test process has long imported all of them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from kumocore.testing.dns import TestDnsServer

CHILD = textwrap.dedent(
    """\
    import asyncio, json, sys, time
    from kumocore.dns.resolver import Resolver

    async def main(server):
        resolver = Resolver([server])  # start-up: outside the measurement
        before = set(sys.modules)
        gaps, last, stop = [], time.perf_counter(), False

        async def tick():
            nonlocal last
            while not stop:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.005)
        await resolver.lookup_mx("mail.test")
        await resolver.lookup_addr("mx.mail.test")
        await resolver.lookup_txt("mail.test")
        await resolver.lookup_records("_dmarc.mail.test", "TXT")  # nodata: an SOA
        stop = True
        await ticker
        print(json.dumps({"imported": sorted(set(sys.modules) - before),
                          "longest": max(gaps)}))

    asyncio.run(main(sys.argv[1]))
    """
)

ZONES = {
    "mail.test": {"MX": [(10, "mx.mail.test")], "TXT": ["v=spf1 -all"]},
    "mx.mail.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
}


def test_the_first_lookups_import_no_module_on_the_event_loop() -> None:
    with TestDnsServer(ZONES) as server:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, server.address],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-1000:]
    result = json.loads(done.stdout.splitlines()[-1])
    # Before: dns._asyncio_backend, sniffio and five dns.rdtypes modules (20-70 ms).
    assert result["imported"] == []
    assert result["longest"] < 0.1
