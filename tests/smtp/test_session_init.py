"""kumocore builds its aiosmtpd protocol without SMTP.__init__ (it is slow); make sure
every attribute aiosmtpd's own constructor sets is still there, so an aiosmtpd upgrade
that adds one fails here rather than in production."""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import SMTP

from tests.smtp.conftest import SmtpEnv


async def test_lean_init_sets_every_attribute_aiosmtpd_sets(smtp: SmtpEnv) -> None:
    from kumocore.reception.smtp.session import EsmtpSession

    reference = SMTP(object(), hostname="x", loop=asyncio.get_running_loop())
    ours = EsmtpSession(smtp.listener)
    missing = set(vars(reference)) - set(vars(ours))
    assert missing == set()
