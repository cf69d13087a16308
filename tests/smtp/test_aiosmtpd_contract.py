"""kumocore runs on aiosmtpd's private internals (kumocore.reception.smtp.aiosmtpd_contract): the
installed aiosmtpd must be the tested release series and have the internals kumocore
uses, and a release without them must be refused loudly, before any listener starts."""

from __future__ import annotations

import asyncio
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from kumocore.reception.smtp import aiosmtpd_contract
from kumocore.reception.smtp.aiosmtpd_contract import internals_problems, version_problem

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_installed_aiosmtpd_is_the_tested_series_with_the_internals_kumocore_uses() -> None:
    assert version_problem(version("aiosmtpd")) is None
    assert internals_problems(SMTP) == []
    aiosmtpd_contract.check_aiosmtpd()


def test_pyproject_pins_aiosmtpd_to_the_series_the_contract_accepts() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    wanted = ".".join(map(str, aiosmtpd_contract.MINIMUM))
    assert f"aiosmtpd~={wanted}" in dependencies


@pytest.mark.parametrize("release", ["1.5.0", "2.0", "1.4.5", "1.3.2"])
def test_an_untested_aiosmtpd_release_is_named_in_the_refusal(release: str) -> None:
    problem = version_problem(release)
    assert problem is not None and release in problem and "aiosmtpd~=1.4.6" in problem


def test_a_release_without_the_internals_kumocore_uses_is_refused() -> None:
    class Changed(SMTP):
        # what a refactored aiosmtpd might look like: a renamed command loop and a
        # timeout reset without its duration
        _handle_client = None  # type: ignore[assignment]

        def _reset_timeout(self) -> None:  # type: ignore[override]
            pass

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._loop_task = asyncio.ensure_future(self._serve())

        async def _serve(self) -> None:
            pass

    problems = internals_problems(Changed)
    assert "aiosmtpd SMTP._handle_client is missing" in problems
    assert any(p.startswith("aiosmtpd SMTP._reset_timeout takes ()") for p in problems)
    assert "aiosmtpd SMTP.connection_made no longer uses _handler_coroutine" in problems
    assert "aiosmtpd SMTP.connection_made no longer uses _original_transport" in problems
