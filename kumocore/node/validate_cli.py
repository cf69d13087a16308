"""``kumocore validate`` on the command line: load the policy, run its checks, print the
summary or each problem with its file and line, and answer with the exit status.

Its own module because it is one command's run, as :mod:`kumocore.policy.explain_cli` is
for ``kumocore explain``; :mod:`kumocore.node.cli` declares the command's arguments and
calls it.
"""

from __future__ import annotations

import sys


def _report_ignored() -> None:
    from kumocore.config.unsupported import ignored_options

    for name, function in sorted(ignored_options().items()):
        print(
            f"kumocore: warning: KumoMTA's option {name!r} ({function}) is not supported "
            "by kumocore yet and is ignored (--allow-unsupported)",
            file=sys.stderr,
        )


async def _validate(policy: str, domains: list[str], tenants: list[str]) -> int:
    from kumocore.node.runtime import Runtime
    from kumocore.policy.policy_check import check_policy

    runtime = Runtime()
    await runtime.load(policy)
    # As `kumod --validate`: the validate_config handlers run after init, and any
    # kumo.validation_failed() they (or init) called fails validation.
    await runtime.hooks.validate_config()
    if runtime.validation.failed:
        for failure in runtime.validation.failures:
            print(f"kumocore: validation failed: {failure}", file=sys.stderr)
        print(
            f"policy {policy} failed validation ({len(runtime.validation.failures)} problem(s))",
            file=sys.stderr,
        )
        return 1
    try:
        findings = await check_policy(runtime, domains=domains, tenants=tenants)
    finally:
        await runtime.hooks.shutdown()
    config = runtime.config
    errors = [f for f in findings if f.severity == "error"]
    summary = (
        f"{len(config.spools)} spools, "
        f"{len(config.esmtp_listeners)} ESMTP and {len(config.http_listeners)} HTTP "
        f"listeners, {len(config.egress_sources)} egress sources, "
        f"{len(config.egress_pools)} egress pools"
    )
    for finding in findings:
        print(finding, file=sys.stderr)
    _report_ignored()
    if errors:
        print(f"policy {policy} has {len(errors)} error(s): {summary}")
        return 1
    warned = f", {len(findings)} warning(s)" if findings else ""
    print(f"policy {policy} OK: {summary}{warned}")
    return 0
