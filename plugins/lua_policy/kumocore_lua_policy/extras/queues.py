"""``policy-extras.queue``: tenant, campaign and queue settings from ``queues.toml``.

File format (TOML or JSON)::

    tenant_header = "X-Tenant"          # tenant from this header (meta 'tenant')
    remove_tenant_header = true
    campaign_header = "X-Campaign"      # campaign from this header (meta 'campaign')
    remove_campaign_header = true
    default_tenant = "default-tenant"   # when the header is absent

    [tenant."mytenant"]                 # kumo.make_queue_config options, plus:
    egress_pool = "pool-1"
    require_authz = ["daniel"]          # only these SMTP AUTH identities may use the tenant

    [queue.default]                     # options for every queue
    max_age = "24 hours"
    [queue."gmail.com"]                 # per destination domain ("*.x" allowed)
    retry_interval = "17 mins"
    routing_domain = "relay.example"    # sets the message's routing_domain
    [queue."gmail.com"."mytenant"]      # domain AND tenant
    [queue."gmail.com"."mytenant"."welcome"]   # domain AND tenant AND campaign

Options resolve default → domain → tenant → domain+tenant → domain+tenant+campaign, the
later one winning key by key. Files merge in order, later ones winning.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from kumocore import Message, Rejection
from kumocore.config import QueueConfig
from kumocore_lua_policy.extras.datafile import (
    DataFileError,
    build_options,
    check_keys,
    expect,
    key_path,
    load_all,
    string_list,
    table,
)
from kumocore_lua_policy.extras.domain_map import DomainMap
from kumocore_lua_policy.extras.queue_rates import NOT_IN_QUEUE_SECTIONS, OverallRates

HELPER = "policy-extras.queue"
#: Distinct (domain, tenant, campaign) answers kept by :meth:`QueueHelper.resolve`.
RESOLVE_CACHE_SIZE = 4096
_TOP = {
    "tenant_header": str,
    "remove_tenant_header": bool,
    "campaign_header": str,
    "remove_campaign_header": bool,
    "default_tenant": str,
    "scheduling_header": str,
}
# Read only in tenant sections (kumocore_lua_policy.extras.queue_rates).
_NOT_YET = {"overall_max_message_rate": NOT_IN_QUEUE_SECTIONS}
_QUEUE_OPTIONS = frozenset(QueueConfig.option_converters)
_EXTRA = frozenset({"routing_domain"})


class QueueHelper:
    """The merged queue data: :meth:`apply` for received messages, :meth:`resolve` for
    ``get_queue_config``."""

    def __init__(self, files: Sequence[str | dict[str, Any]]) -> None:
        self.settings: dict[str, Any] = {}
        self.tenants: dict[str, dict[str, Any]] = {}
        self._queues: dict[str, dict[str, Any]] = {}
        #: ``overall_max_message_rate`` of tenants and tenant campaigns.
        self.overall_rates = OverallRates()
        load_all(HELPER, files, self._merge_file)
        self.queues: DomainMap[dict[str, Any]] = DomainMap(
            {k: v for k, v in self._queues.items() if k != "default"}
        )
        self.default = self._queues.get("default", {})
        self._resolve_cached = functools.lru_cache(maxsize=RESOLVE_CACHE_SIZE)(self._resolve)

    # ------------------------------------------------------------------ events
    def apply(self, message: Message, authz_id: str | None = None) -> None:
        """Set the message's tenant, campaign and routing domain (or reject it), and its
        scheduling from ``scheduling_header`` (the header is then removed, as KumoMTA)."""
        scheduling_header = self.settings.get("scheduling_header")
        if scheduling_header:
            message.import_scheduling_header(scheduling_header, True)
        campaign_header = self.settings.get("campaign_header")
        if campaign_header:
            campaign = message.get_first_named_header_value(campaign_header)
            if campaign:
                message.set_meta("campaign", campaign)
                if self.settings.get("remove_campaign_header"):
                    message.remove_all_named_headers(campaign_header)
        tenant, source = self._tenant(message)
        if tenant is not None:
            self._authorize(tenant, source, message, authz_id)
            message.set_meta("tenant", tenant)
        composed = self._compose(
            message.recipient_domain, message.get_meta("tenant"), message.get_meta("campaign")
        )
        if composed.get("routing_domain"):
            message.set_meta("routing_domain", composed["routing_domain"])

    def resolve(
        self, domain: str, tenant: str | None = None, campaign: str | None = None,
        provider: str | None = None,
    ) -> QueueConfig | None:
        """The queue config; asked for every message received, so answers are cached
        (configs are immutable, the data never changes after load). ``provider`` is the
        ``provider_name`` the egress path of the domain would have, for a config the
        files give none (KumoMTA's helper back-propagates it so)."""
        return self._resolve_cached(domain.lower(), tenant, campaign, provider)

    def wants_provider(
        self, domain: str, tenant: str | None = None, campaign: str | None = None
    ) -> bool:
        """Whether the files give a config for these that names no ``provider_name``."""
        params = self.params(domain, tenant, campaign)
        return bool(params) and "provider_name" not in params

    def params(
        self, domain: str, tenant: str | None = None, campaign: str | None = None
    ) -> dict[str, Any]:
        """The ``kumo.make_queue_config`` options the files give (KumoMTA's
        ``helper:resolve_config``: a plain table a policy may change before making it)."""
        return {
            k: v for k, v in self._compose(domain.lower(), tenant, campaign).items()
            if k in _QUEUE_OPTIONS
        }

    def _resolve(
        self, domain: str, tenant: str | None, campaign: str | None, provider: str | None
    ) -> QueueConfig | None:
        params = self.params(domain, tenant, campaign)
        if params and provider is not None:
            params.setdefault("provider_name", provider)
        return QueueConfig.from_options(params) if params else None

    def _tenant(self, message: Message) -> tuple[str | None, str]:
        header = self.settings.get("tenant_header")
        if header:
            tenant = message.get_first_named_header_value(header)
            if tenant:
                if self.settings.get("remove_tenant_header"):
                    message.remove_all_named_headers(header)
                return tenant, f"'{header}' header"
        return self.settings.get("default_tenant"), "default_tenant option"

    def _authorize(self, tenant: str, source: str, message: Message, authz_id: str | None) -> None:
        config = self.tenants.get(tenant)
        if config is None:
            raise Rejection(
                500, f"tenant '{tenant}' specified by {source} is not defined in your queue config"
            )
        allowed = config.get("require_authz")
        if allowed is None:
            return
        who = authz_id if authz_id is not None else message.get_meta("authz_id")
        if not who:
            raise Rejection(500, f"tenant '{tenant}' requires SMTP AUTH")
        if who not in allowed:
            raise Rejection(500, f"authz_id '{who}' is not authorized to send as tenant '{tenant}'")

    def _compose(self, domain: str, tenant: str | None, campaign: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        params.update(self.default.get("options", {}))
        entry = self.queues.get(domain)
        if entry is not None:
            params.update(entry["options"])
        if tenant is not None:
            params.update(self.tenants.get(tenant, {}).get("options", {}))
        if entry is not None and tenant is not None:
            by_tenant = entry["tenants"].get(tenant)
            if by_tenant is not None:
                params.update(by_tenant["options"])
                if campaign is not None:
                    params.update(by_tenant["campaigns"].get(campaign, {}))
        return params

    # ------------------------------------------------------------------ loading
    def overall_throttles(self, tenant: Any = None, campaign: Any = None) -> list[list[str]]:
        """``[name, rate]`` of the overall rates a message of ``tenant`` and ``campaign``
        is held to (``throttle_insert_ready_queue``); empty for most."""
        return self.overall_rates.throttles(tenant, campaign)

    def has_overall_rates(self) -> bool:
        return bool(self.overall_rates)

    def _merge_file(self, file: str, data: dict[str, Any]) -> None:
        for name, value in data.items():
            if name in _NOT_YET:
                raise DataFileError(HELPER, file, name, _NOT_YET[name])
            if name == "tenant":
                for tenant, options in table(HELPER, file, name, value).items():
                    self._merge_tenant(file, key_path("tenant", tenant), tenant, options)
            elif name == "queue":
                for domain, options in table(HELPER, file, name, value).items():
                    self._merge_queue(file, key_path("queue", domain), domain, options)
            elif name in _TOP:
                kind = _TOP[name]
                what = "true or false" if kind is bool else "a string"
                self.settings[name] = expect(HELPER, file, name, value, kind, what)
            else:
                check_keys(HELPER, file, "", {name: value}, (*_TOP, "tenant", "queue"))

    def _merge_tenant(self, file: str, key: str, tenant: str, options: Any) -> None:
        options = dict(table(HELPER, file, key, options))
        self.overall_rates.take_from_tenant(file, key, tenant, options)
        target = self.tenants.setdefault(tenant, {"options": {}})
        if "require_authz" in options:
            target["require_authz"] = string_list(
                HELPER, file, key_path(key, "require_authz"), options.pop("require_authz")
            )
        target["options"].update(_queue_options(file, key, options))

    def _merge_queue(self, file: str, key: str, domain: str, options: Any) -> None:
        target = self._queues.setdefault(domain, {"options": {}, "tenants": {}})
        plain, tenants = _split(file, key, table(HELPER, file, key, options))
        target["options"].update(_queue_options(file, key, plain))
        for tenant, value in tenants.items():
            tkey = key_path(key, tenant)
            tplain, campaigns = _split(file, tkey, value)
            entry = target["tenants"].setdefault(tenant, {"options": {}, "campaigns": {}})
            entry["options"].update(_queue_options(file, tkey, tplain))
            for campaign, cvalue in campaigns.items():
                ckey = key_path(tkey, campaign)
                cplain, deeper = _split(file, ckey, cvalue)
                if deeper:
                    raise DataFileError(
                        HELPER,
                        file,
                        key_path(ckey, next(iter(deeper))),
                        "unknown key: a campaign section takes queue "
                        "options, not another level of sections",
                    )
                entry["campaigns"].setdefault(campaign, {}).update(
                    _queue_options(file, ckey, cplain)
                )


def _split(
    file: str, key: str, options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options of the section, and its sub-sections (tables that are not option values)."""
    plain, nested = {}, {}
    for name, value in options.items():
        if name in _NOT_YET:
            raise DataFileError(HELPER, file, key_path(key, name), _NOT_YET[name])
        if isinstance(value, dict) and name not in _QUEUE_OPTIONS:
            nested[name] = value
        else:
            plain[name] = value
    return plain, nested


def _queue_options(file: str, key: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check ``options`` as make_queue_config takes them (plus ``routing_domain``)."""
    for name in options:
        if name in _NOT_YET:
            raise DataFileError(HELPER, file, key_path(key, name), _NOT_YET[name])
    extra = {k: options[k] for k in options if k in _EXTRA}
    for name, value in extra.items():
        expect(HELPER, file, key_path(key, name), value, str, "a domain name")
    rest = {k: v for k, v in options.items() if k not in _EXTRA}
    build_options(HELPER, file, key, QueueConfig, rest)
    return dict(options)
