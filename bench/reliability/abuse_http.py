"""HTTP fuzzing: schemathesis against every operation of ``/api-docs/openapi.json``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HttpFuzzReport:
    """What schemathesis found against every operation of ``/api-docs/openapi.json``."""

    requests: int = 0
    status: dict[str, dict[int, int]] = field(default_factory=dict)  # "POST /path" -> codes
    failures: dict[str, str] = field(default_factory=dict)  # "POST /path: check" -> example
    server_errors: int = 0

    @property
    def inputs(self) -> int:
        return self.requests


def http_fuzz(base_url: str, *, max_examples: int = 25, negative: bool = True,
              excluded: Sequence[str] = ()) -> HttpFuzzReport:  # fmt: skip
    """Run schemathesis (positive and negative generation) against a live HTTP listener.

    Checks: no 5xx, and responses conform to the document (status codes, content types,
    response schemas). ``positive_data_acceptance`` is left out: the document describes
    types, not what makes an address valid, so most generated injections get 400.
    """
    import schemathesis
    from hypothesis import HealthCheck, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import positive_data_acceptance

    report = HttpFuzzReport()
    schema = schemathesis.openapi.from_url(f"{base_url}/api-docs/openapi.json")
    operations = [_operation(result) for result in schema.get_all_operations()]
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if negative else [])
    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"
        if name in excluded:
            continue
        codes = report.status.setdefault(name, {})
        for mode in modes:
            run = _fuzz_operation(
                report, operation, name, codes, mode, base_url, positive_data_acceptance
            )
            settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(run)
            with contextlib.suppress(Unsatisfiable):  # nothing to vary (no parameters)
                run()
    return report


def _operation(result: Any) -> Any:
    """The operation of one schema entry; a schema entry the fuzzer cannot read fails."""
    from schemathesis.core.result import Err

    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def _fuzz_operation(report: HttpFuzzReport, operation: Any, name: str, codes: dict[int, int],
                    mode: Any, base_url: str, excluded_check: Any) -> Any:  # fmt: skip
    """The hypothesis test for one operation and generation mode (settings applied after)."""
    from hypothesis import given

    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=10)
        report.requests += 1
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            report.server_errors += 1
        try:
            case.validate_response(response, excluded_checks=[excluded_check])
        except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            for failure in getattr(exc, "exceptions", [exc]):
                title = str(failure).strip().splitlines()[0][:100]
                report.failures.setdefault(
                    f"{name} ({mode.value}): {title}",
                    f"{response.status_code} for {str(case.body)[:200]}",
                )

    return run
