"""``kumocore logs cat|tail DIR [--type T] [--queue Q]``: read local log segments."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import IO, Any

from kumocore.logs.record import RecordType

_TYPES = [t.value for t in RecordType if t is not RecordType.Any]


def add_logs_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``logs`` (with ``cat`` and ``tail``) to an argparse subparsers object; the parsed
    namespace carries ``handler`` = :func:`run_logs`."""
    logs: argparse.ArgumentParser = subparsers.add_parser(
        "logs", help="print local log records (zstd JSON-lines segments)"
    )
    actions = logs.add_subparsers(dest="logs_command", required=True)
    cat = actions.add_parser("cat", help="print every record, finished and in-progress")
    tail = actions.add_parser("tail", help="print the last records, then follow new ones")
    for parser in (cat, tail):
        parser.add_argument("dir", help="log directory (or, for cat, one segment file)")
        parser.add_argument(
            "--type",
            dest="types",
            action="append",
            choices=_TYPES,
            metavar="TYPE",
            help="only this record type (repeatable)",
        )
        parser.add_argument("--queue", help="only records of this exact queue name")
        parser.add_argument("--format", choices=("json", "text"), default="json",
                            help="json: the records as written (default); text: one "
                            "readable line per record")  # fmt: skip
        parser.set_defaults(handler=run_logs)
    tail.add_argument(
        "-n",
        "--lines",
        type=int,
        default=10,
        help="how many existing records to print first (default 10)",
    )
    tail.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="print and exit instead of waiting for new records",
    )
    return logs


def run_logs(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Run ``kumocore logs cat|tail``; returns the process exit status."""
    from kumocore.logs import reader

    stream: IO[str] = out if out is not None else sys.stdout
    if getattr(args, "format", "json") == "text":
        from kumocore.logs.text import TextLines

        stream = TextLines(stream)  # type: ignore[assignment]
    try:
        if args.logs_command == "cat":
            reader.cat(args.dir, args.types, args.queue, stream)
        else:
            asyncio.run(
                reader.tail(
                    args.dir, args.types, args.queue, stream, follow=args.follow, lines=args.lines
                )
            )
    except ModuleNotFoundError as exc:
        print(f"kumocore logs: {exc.name} is required (pip install zstandard)", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"kumocore logs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `kumocore logs cat DIR | head`
        return 0
    return 0
