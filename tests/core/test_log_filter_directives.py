"""``kumo.set_diagnostic_log_filter`` (and the admin endpoint): directives for KumoMTA's
other targets are reported, a bounded number of them by name."""

from __future__ import annotations

from structlog.testing import capture_logs

from kumocore.policy.tasks import set_diagnostic_log_filter


def test_thousands_of_unknown_directives_are_counted_and_only_the_first_named() -> None:
    spec = ",".join(f"crate{n}=debug" for n in range(5000)) + ",kumod=info"
    set_diagnostic_log_filter("kumod=info")  # whatever an earlier test left: warnings show
    with capture_logs() as logs:
        set_diagnostic_log_filter(spec)  # ends at kumod=info, as the other tests leave it
    [warning] = [e for e in logs if e["event"].startswith("diagnostic filter directives")]
    assert warning["count"] == 5000
    assert warning["directives"] == [f"crate{n}=debug" for n in range(10)]
