"""``overall_max_message_rate`` of ``policy-extras.queue``: one rate for all of a
tenant's (or one of its campaigns') scheduled queues together.

A queue's ``max_message_rate`` limits each queue (``campaign:tenant@domain``) alone;
KumoMTA's helper adds these overall rates, written in the tenant's section::

    [tenant.'mytenant']
    overall_max_message_rate = '100/s'          # all of mytenant's queues together
    [tenant.'mytenant'.campaigns.'welcome']
    overall_max_message_rate = '50/s'           # all of its 'welcome' campaign's

They are applied where a message leaves its scheduled queue for a ready queue
(``throttle_insert_ready_queue``): a message over the rate is delayed there, as
KumoMTA's helper does, through throttles of KumoMTA's names (shared through Redis with
KumoMTA nodes when ``kumo.configure_redis_throttles`` is in use). Differences from
KumoMTA's helper: a campaign is held to its own rate (KumoMTA's code passes the tenant's
rate to the campaign's throttle, which its documentation does not say), and the key is
refused where nothing would apply it (a ``[queue...]`` section; any other key under
``campaigns``), where KumoMTA accepts and ignores it.
"""

from __future__ import annotations

from typing import Any

from kumocore import ConfigError
from kumocore.throttle import ThrottleSpec
from kumocore_lua_policy.extras.datafile import DataFileError, key_path, table

HELPER = "policy-extras.queue"
OPTION = "overall_max_message_rate"
#: Why the option is refused in the ``[queue...]`` sections.
NOT_IN_QUEUE_SECTIONS = (
    "overall_max_message_rate applies only in a [tenant.'NAME'] section or its "
    "[tenant.'NAME'.campaigns.'CAMPAIGN'] sections (KumoMTA's helper reads it nowhere "
    "else); for one queue's rate use max_message_rate"
)


def tenant_throttle_name(tenant: str) -> str:
    return f"queue-helper-tenant-overall_max_message_rate-{tenant}"


def campaign_throttle_name(tenant: str, campaign: str) -> str:
    return f"queue-helper-tenant-campaign-overall_max_message_rate-{tenant}-{campaign}"


class OverallRates:
    """The overall rates of every tenant and tenant campaign the files give."""

    def __init__(self) -> None:
        self.tenants: dict[str, str] = {}
        self.campaigns: dict[tuple[str, str], str] = {}

    def __bool__(self) -> bool:
        return bool(self.tenants or self.campaigns)

    def take_from_tenant(self, file: str, key: str, tenant: str, options: dict[str, Any]) -> None:
        """Remove and check the tenant section's ``overall_max_message_rate`` and its
        ``campaigns`` table (later files win, key by key)."""
        if OPTION in options:
            self.tenants[tenant] = _rate(file, key_path(key, OPTION), options.pop(OPTION))
        if "campaigns" not in options:
            return
        campaigns_key = key_path(key, "campaigns")
        for campaign, section in table(HELPER, file, campaigns_key,
                                       options.pop("campaigns")).items():  # fmt: skip
            where = key_path(campaigns_key, campaign)
            section = table(HELPER, file, where, section)
            for name in section:
                if name != OPTION:
                    raise DataFileError(HELPER, file, key_path(where, name), (
                        "unknown key: a tenant's campaign section takes only "
                        "overall_max_message_rate (KumoMTA's helper reads nothing else "
                        "there); a campaign's queue options go in "
                        "[queue.'DOMAIN'.'TENANT'.'CAMPAIGN']"))  # fmt: skip
            if OPTION in section:
                self.campaigns[tenant, campaign] = _rate(
                    file, key_path(where, OPTION), section[OPTION]
                )

    def throttles(self, tenant: Any = None, campaign: Any = None) -> list[list[str]]:
        """``[name, rate]`` of each throttle a message of ``tenant`` and ``campaign``
        passes, the tenant's first, as KumoMTA's helper checks them."""
        if not isinstance(tenant, str):
            return []
        found = []
        rate = self.tenants.get(tenant)
        if rate is not None:
            found.append([tenant_throttle_name(tenant), rate])
        if isinstance(campaign, str):
            rate = self.campaigns.get((tenant, campaign))
            if rate is not None:
                found.append([campaign_throttle_name(tenant, campaign), rate])
        return found


def _rate(file: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DataFileError(HELPER, file, key, f"expected a rate such as '100/s', got {value!r}")
    try:
        ThrottleSpec.parse(value)
    except ConfigError as exc:
        raise DataFileError(HELPER, file, key, str(exc)) from None
    return value
