"""``python -m bench.perf.run --mode short|full``: kumocore vs its peers, same load, same machine.

Sections (``--only`` picks some):

``e2e``       ``smtp-source`` (``--sessions`` connections, each message to a distinct
              recipient) → relay → its own sink (``--sink``), for each size (2, 50, 100 KB),
              first message injected → last message at the sink. Six sides, like for
              like (bench/perf/e2e.py): Postfix and kumocore without signing, Postfix +
              OpenDKIM and kumocore with DKIM, Haraka without and with DKIM. Each side's
              sample is checked (queued on disk, signed or not), then a warm-up, then
              ``repeats`` interleaved runs per size; the ratios use the medians.
``http``      ``/api/inject/v1`` (``--http-batch`` recipients per request) → kumocore →
              sink; recipients per second, counted at the sink.
``scheduled`` N deferred messages in the spool: time for kumocore to recover them at
              start-up, and RSS per scheduled message (see bench/perf/memory.py).
``profile``   py-spy samples kumocore's event-loop thread (the bottleneck) while
              ``smtp-source`` keeps it saturated with 2 KB messages (not in the ratio).

The last two lines are always ``kumocore/haraka end-to-end ratio: X.XX`` and
``kumocore/postfix end-to-end ratio: X.XX``: geometric means over the sizes of the
like-for-like ratios (kumocore / Postfix and kumocore+DKIM / Postfix+OpenDKIM; the same
against Haraka). Slow is informative, never a failure. The exit status is 1 when a side
delivers nothing or the harness breaks; in full mode also when a side cannot run or its
sample check fails. In short mode (CI) a missing Haraka or OpenDKIM is reported, and the
run goes on without that side (0.00 when no pair is left).

``--baseline TREE`` (another checkout, e.g. ``git worktree add --detach /tmp/base HEAD~3``)
adds a ``baseline`` twin for each kumocore side: that checkout's core and plugins, run from
its own directory and interleaved with the others, so that a change is measured against
the code before it in one run. ``kumocore/baseline at N KB`` lines compare them; the
baseline is in no ratio line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.perf.baseline import baseline_lines, expand_sides
from bench.perf.e2e import ALL_SIDES, run_e2e
from bench.perf.haraka import haraka_version
from bench.perf.kumocore_side import BenchDns, KumocoreSettings, generate_dkim_key
from bench.perf.load import KC_SINK, SINKS, LoadError, missing_tools, sink_program, write_message
from bench.perf.machine import machine, openssl_rsa2048, postfix_version
from bench.perf.opendkim import opendkim_version
from bench.perf.report import (
    HARAKA_LINE,
    HARAKA_PAIRS,
    POSTFIX_PAIRS,
    RATIO_LINE,
    e2e_ratio,
    log,
    print_e2e,
    print_profile,
)
from bench.perf.sections import MODES, Mode, run_http, run_profile, run_scheduled

# ----------------------------------------------------------------------------- e2e


def e2e_section(
    root: Path,
    mode: Mode,
    base: KumocoreSettings,
    key: Path,
    dkim_public: str,
    sides: list[str],
    report: dict[str, Any],
    failures: list[str],
    *,
    strict: bool,
    baseline: Path | None = None,
) -> float:
    """Run the e2e section, print its table and ratios; returns the Postfix ratio."""
    section = run_e2e(
        root, mode, base, key, dkim_public, sides, failures, strict=strict, baseline=baseline)
    print_e2e(section.results)
    ratio, per_pair = e2e_ratio(section.results, POSTFIX_PAIRS)
    haraka, per_haraka = e2e_ratio(section.results, HARAKA_PAIRS)
    report["e2e"] = [
        {**asdict(r), "rate": r.rate, "cpu_ms_per_message": r.cpu_ms_per_message}
        for r in section.results
    ]
    report["samples"] = [asdict(check) for check in section.checks]
    report["skipped_sides"] = section.skipped
    report["ratio_per_pair"] = {f"{a}/{b} {s}": v for (a, b, s), v in per_pair.items()}
    report["haraka_ratio"] = haraka
    report["haraka_ratio_per_pair"] = {f"{a}/{b} {s}": v for (a, b, s), v in per_haraka.items()}
    log("")
    for (ours, theirs, size), value in {**per_pair, **per_haraka}.items():
        log(f"{ours}/{theirs} at {size // 1024} KB: {value:.2f}")
    if baseline is not None:
        report["baseline"] = {"tree": str(baseline), **baseline_lines(section.results)}
    for name, reason in section.skipped.items():
        log(f"not in the ratios: {name} ({reason.splitlines()[0][:200]})")
    report["haraka_line"] = HARAKA_LINE.format(haraka)
    return ratio


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.perf.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=sorted(MODES), default="short")
    parser.add_argument(
        "--only",
        default="e2e,http,scheduled,profile",
        help="comma-separated sections: e2e,http,scheduled,profile",
    )
    parser.add_argument("--sizes", help="message sizes in bytes, e.g. 2048,51200")
    parser.add_argument("--count", type=int, help="messages per size (both sides)")
    parser.add_argument("--sessions", type=int, help="smtp-source sessions")
    parser.add_argument("--scheduled", type=int, help="messages for the scheduled section")
    parser.add_argument("--http-recipients", type=int, help="recipients for the http section")
    parser.add_argument("--repeats", type=int, help="e2e runs per side and size (median)")
    parser.add_argument("--warmup", type=int, help="2 KB warm-up messages per e2e side")
    parser.add_argument("--timeout", type=float, help="seconds per e2e run before giving up")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="kumocore's event loop (KUMOCORE_EVENT_LOOP; uvloop is its default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="kumocore serve --workers N for the e2e and http sections (default: one per "
        "core, like Postfix's processes; the scheduled and profile sections use 1)",
    )
    parser.add_argument(
        "--sides",
        default=",".join(ALL_SIDES),
        help=f"comma-separated e2e sides (default: all of {','.join(ALL_SIDES)})",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another kumocore checkout: adds its twin of each kumocore side (see above)",
    )
    parser.add_argument(
        "--no-dkim",
        action="store_true",
        help="only the sides that do not sign, and kumocore without DKIM in the other sections",
    )
    parser.add_argument(
        "--profile-size", type=int, default=2048,
        help="message size in bytes for the profile section (default 2048)",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="profile only the thread holding the GIL (py-spy --gil)",
    )
    parser.add_argument(
        "--data-kind",
        choices=("LMDB", "RocksDB"),
        default="LMDB",
        help="kumocore's data spool kind (default LMDB, as recommended; RocksDB is "
        "KumoMTA's)",
    )
    parser.add_argument(
        "--meta-kind",
        choices=("LMDB", "RocksDB"),
        default="LMDB",
        help="kumocore's meta spool kind (default LMDB: with LMDB data, at the same path, "
        "so that one transaction writes a body and its envelope; a baseline tree without "
        "shared LMDB spools runs RocksDB)",
    )
    parser.add_argument(
        "--sink",
        choices=SINKS,
        default=KC_SINK,
        help="the program that receives and counts the relayed messages (default kc-sink, "
        "bench/perf/sink.c, built with cc; smtp-sink is Postfix's, which takes about 0.5 ms "
        "of CPU per 100 KB message from the machine the sides share)",
    )
    parser.add_argument("--no-logs", action="store_true", help="kumocore without local logs")
    parser.add_argument("--workdir", help="parent of the run's temp dir (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, spools)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def build_mode(args: argparse.Namespace) -> Mode:
    base = MODES[args.mode]
    values = asdict(base)
    if args.sizes:
        values["sizes"] = tuple(int(s) for s in args.sizes.split(","))
    sizes = values["sizes"]
    counts = {size: base.counts.get(size, base.counts[min(base.counts)]) for size in sizes}
    if args.count:
        counts = dict.fromkeys(sizes, args.count)
    values["counts"] = counts
    if args.sessions:
        values["sessions"] = args.sessions
    if args.scheduled:
        values["scheduled"] = args.scheduled
        values["breakdown"] = min(base.breakdown, args.scheduled)
    if args.timeout:
        values["e2e_timeout"] = args.timeout
    if args.http_recipients:
        values["http_recipients"] = args.http_recipients
    if args.repeats:
        values["repeats"] = args.repeats
    if args.warmup is not None:
        values["warmup"] = args.warmup
    values["sink"] = args.sink
    return Mode(**values)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = build_mode(args)
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    missing = missing_tools()
    if missing:
        log(f"bench: missing Postfix tools: {', '.join(missing)} (apt-get install postfix)")
        log(RATIO_LINE.format(0.0))
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    root = Path(tempfile.mkdtemp(prefix="kumocore-bench-", dir=args.workdir))
    os.chmod(root, 0o755)  # Postfix's daemons (user postfix) must reach their queue
    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "mode": args.mode,
        "workdir": str(root),
        "machine": machine(),
        "postfix": postfix_version(),
        "opendkim": opendkim_version(),
        "haraka": haraka_version(),
        "openssl_rsa2048_sign_per_s": openssl_rsa2048(mode.openssl_seconds),
        "settings": {
            **asdict(mode),
            "loop": args.loop,
            "workers": args.workers,
            "dkim": not args.no_dkim,
            "local_logs": not args.no_logs,
            "data_kind": args.data_kind,
            "meta_kind": args.meta_kind,
        },
    }
    failures: list[str] = []
    ratio = 0.0
    try:
        dkim_key, dkim_public = generate_dkim_key(root)
        mode = replace(mode, sink_program=sink_program(mode.sink, root))
        with BenchDns(dkim_public) as dns:
            base = KumocoreSettings(
                sink_port=0,
                dns=dns.address,
                connections=20,
                http=False,
                dkim_key=None if args.no_dkim else dkim_key,
                local_logs=not args.no_logs,
                loop=args.loop,
                workers=args.workers,
                data_kind=args.data_kind,
                meta_kind=args.meta_kind,
            )
            log(f"kumocore benchmark ({args.mode}), work dir {root}")
            log(
                f"machine: {report['machine']}; Postfix {report['postfix']}; "
                f"{report['opendkim']}; Haraka {report['haraka']}"
            )
            log(f"sink: {mode.sink} ({mode.sink_program})")
            signs = report["openssl_rsa2048_sign_per_s"]
            log(
                "openssl speed rsa2048: "
                + (f"{signs:,.0f} sign/s (one core)" if signs else "not measured")
            )
            if "e2e" in sections:
                baseline = args.baseline.resolve() if args.baseline else None
                sides = expand_sides(
                    [s.strip() for s in args.sides.split(",") if s.strip()], baseline)
                if args.no_dkim:
                    sides = [side for side in sides if "+" not in side]
                ratio = e2e_section(
                    root,
                    mode,
                    base,
                    dkim_key,
                    dkim_public,
                    sides,
                    report,
                    failures,
                    strict=args.mode == "full",
                    baseline=baseline,
                )
            if "http" in sections:
                log(
                    f"http: {mode.http_recipients:,} recipients, {mode.http_batch} per request, "
                    f"{mode.http_concurrency} requests in flight"
                )
                try:
                    http = run_http(root, mode, base)
                    report["http"] = {**asdict(http), "rate": http.rate}
                    log(
                        f"  {http.received:,}/{http.recipients:,} delivered in "
                        f"{http.seconds:.2f}s: "
                        f"{http.rate:,.0f} recipients/s (accepted {http.accepted:,} in "
                        f"{http.accept_seconds:.2f}s, failed {http.failed:,})"
                    )
                    for error in http.errors:
                        log(f"  ! {error}")
                    if http.received == 0:
                        failures.append(f"HTTP inject delivered nothing: {http.errors[:2]}")
                except LoadError as exc:
                    report["http"] = {"error": str(exc)[:1500]}
                    failures.append(f"HTTP inject failed: {str(exc)[:1500]}")
            if "scheduled" in sections:
                log(f"scheduled: {mode.scheduled:,} deferred messages in the spool")
                scheduled = run_scheduled(root, mode, base)
                report["scheduled"] = scheduled
                log(
                    f"  recovered {scheduled['recovered_logged']} messages: "
                    f"{scheduled['seconds_to_ready']:.1f}s from start to listening "
                    f"(scan {scheduled['scan_seconds']}s, {scheduled['recovery_rate']:,.0f}/s)"
                )
                log(
                    f"  RSS {scheduled['rss_kib'] / 1024:.0f} MiB (peak "
                    f"{scheduled['peak_rss_kib'] / 1024:.0f} MiB, idle "
                    f"{scheduled['baseline_rss_kib'] / 1024:.0f} MiB): "
                    f"{scheduled['bytes_per_message']:.0f} B per scheduled message "
                    f"(peak {scheduled['peak_bytes_per_message']:.0f} B)"
                )
                log(
                    f"  tracemalloc, {scheduled['breakdown_count']:,} messages: "
                    f"Message {scheduled['breakdown_message_bytes']:.0f} B, "
                    f"queued {scheduled['breakdown_queued_bytes']:.0f} B per message"
                )
                for error in scheduled["errors"]:
                    log(f"  ! {error}")
                if scheduled["recovered_logged"] != mode.scheduled:
                    log(f"  ! expected {mode.scheduled} recovered messages")
            if "profile" in sections:
                log(f"profile: py-spy on kumocore for {mode.profile_seconds}s of "
                    f"{args.profile_size} B messages")
                message = write_message(root, args.profile_size)
                try:
                    profile = run_profile(root, mode, message, base, gil=args.profile_gil)
                except LoadError as exc:
                    profile = {"skipped": str(exc)[:500]}
                report["profile"] = profile
                print_profile(profile)
    except KeyboardInterrupt as exc:
        failures.append(f"interrupted ({exc})")
    except Exception:  # a harness bug: report it, still end with the ratio line
        failures.append(f"harness error:\n{traceback.format_exc()}")
    finally:
        report["seconds"] = time.perf_counter() - started
        report["ratio"] = ratio
        report["failures"] = failures
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    log(f"total {report['seconds']:.0f}s")
    for failure in failures:
        log(f"FAIL: {failure}")
    log(report.get("haraka_line", HARAKA_LINE.format(0.0)))
    log(RATIO_LINE.format(ratio))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
