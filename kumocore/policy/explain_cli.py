"""``kumocore explain`` on the command line: arguments, text for people, ``--json`` for tools."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING, Any

from kumocore.policy.explain import Explanation, Probe, explain

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

EXAMPLE = (
    "Example: kumocore explain --policy policy.lua --from news@example.com "
    "--to user@gmail.com --header 'X-Tenant: TenantOne' --peer 10.0.0.5"
)


def add_explain_subcommand(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "explain",
        help="dry-run one message through the policy, without sending",
        description="Ask the policy every question the server would ask for one message "
        "(relay decision, reception event, queue and its configuration, pool and weighted "
        "sources, MX and site name, egress path per source, DKIM signature) and print the "
        "answers and every handler error. Nothing is spooled or sent. Exit 0 when every "
        "step succeeded, 1 otherwise, 2 for a policy that does not load. " + EXAMPLE,
    )
    parser.add_argument("--policy", required=True, help="policy file (.lua or .py)")
    parser.add_argument("--from", dest="sender", required=True, help="envelope sender")
    parser.add_argument("--to", dest="recipient", required=True, help="envelope recipient")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="a message header (repeatable)")  # fmt: skip
    parser.add_argument("--peer", default="127.0.0.1", help="the client's IP address")
    parser.add_argument("--ehlo", default="client.example", help="the client's EHLO name")
    parser.add_argument("--listener", help="the ESMTP listener's listen address "
                        "(default: the first the policy defines)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_main)


def _headers(raw: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"kumocore explain: --header {item!r} is not 'Name: value'")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def _main(args: argparse.Namespace) -> int:
    probe = Probe(sender=args.sender, recipient=args.recipient, headers=_headers(args.header),
                  peer=args.peer, ehlo=args.ehlo, listener=args.listener)  # fmt: skip
    result = asyncio.run(_explain(args.policy, probe))
    print(json.dumps(result.to_json(), indent=2, default=str) if args.json else render(result))
    return 1 if result.errors else 0


async def _explain(policy: str, probe: Probe) -> Explanation:
    from kumocore.node.runtime import Runtime

    runtime = Runtime()
    await runtime.load(policy)
    try:
        return await explain(runtime, probe)
    finally:
        await runtime.hooks.shutdown()


def render(result: Explanation) -> str:
    """One block per step: a status word, the step, then its answer indented."""
    lines: list[str] = []
    for step in result.steps:
        lines.append(f"{'ok  ' if step.error is None else 'FAIL'}  {step.name}")
        if step.error is not None:
            lines.append(f"      error: {step.error}")
        lines.extend(f"      {line}" for line in _answer_lines(step.answer))
    problems = len(result.errors)
    lines.append(f"{problems} problem{'s' if problems != 1 else ''}" if problems else "all ok")
    return "\n".join(lines)


def _answer_lines(answer: dict[str, Any], indent: str = "") -> list[str]:
    lines = []
    for key, value in answer.items():
        if key == "config" and "settings" in answer:
            continue  # the full configuration is in --json; people read what differs
        if key == "settings":
            key = "settings (other than the defaults)"
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines.extend(_answer_lines(value, indent + "  "))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{indent}{key}:")
            lines.extend(f"{indent}  - " + ", ".join(f"{k}={v}" for k, v in item.items())
                         for item in value)  # fmt: skip
        else:
            lines.append(f"{indent}{key}: {value}")
    return lines
