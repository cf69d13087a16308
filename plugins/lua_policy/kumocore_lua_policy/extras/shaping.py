"""``kumo.shaping.load(files, options)``: traffic shaping data, merged as KumoMTA merges it.

For a path (destination ``domain`` + ``site_name``, egress ``source``) the options are
layered, each later layer winning key by key (``additional_connection_limits`` and
``additional_message_rate_throttles`` merge as maps; a block with ``replace_base = true``
discards what was accumulated before it):

1. ``["default"]``, then its ``sources`` entry for the source (a kumocore reading: KumoMTA
   lists no step for it);
2. each matching ``[provider."x"]``, then its ``sources`` entry;
3. the site block (a domain block with ``mx_rollup`` true, matched by the site name its MX
   records had when the files were loaded), then the domain block (``mx_rollup = false``);
4. the site block's ``sources`` entry, then the domain block's.

Within a step, blocks apply in file order. The merged result is cached per
(site, source) — per (domain, site, source) when a domain block or a ``DomainSuffix``
provider makes the answer depend on the domain — so the per-connection lookup is a dict
access after the first one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from kumocore.config import EgressPathConfig
from kumocore_lua_policy.extras.datafile import (
    DataFileError,
    file_list,
    is_toml,
    key_path,
    load_data_file,
    table,
)
from kumocore_lua_policy.extras.shaping_merge import apply_blocks, provider_matches
from kumocore_lua_policy.extras.shaping_options import _load_options
from kumocore_lua_policy.extras.shaping_remote import RemoteOptions, fetch_data
from kumocore_lua_policy.extras.shaping_rules import HELPER, Block, parse_block

log = logging.getLogger("kumocore.shaping")

#: ``lookup_mx(domain)`` → the ``kumo.dns.lookup_mx`` table (``site_name``, ``hosts``...).
MxLookup = Callable[[str], Awaitable[Mapping[str, Any]]]


class Shaping:
    """Loaded shaping data. Build with :func:`load` (it resolves the rollup sites)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = _load_options(options or {})
        self.remote = RemoteOptions.parse(HELPER, options or {})
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.blocks: dict[str, list[Block]] = {}
        self.providers: dict[str, list[Block]] = {}
        self.by_site: dict[str, list[Block]] = {}
        self.by_domain: dict[str, list[Block]] = {}
        self._cache: dict[tuple[str | None, str, str], EgressPathConfig] = {}
        self._lookup_mx: MxLookup | None = None
        self._by_domain_suffix = False
        self._by_mx_host = False

    # ------------------------------------------------------------------ KumoMTA's API
    def get_errors(self) -> list[str]:
        return list(self.errors)

    def get_warnings(self) -> list[str]:
        return list(self.warnings)

    def get_referenced_sources(self) -> dict[str, list[str]]:
        """Source name → the blocks that name it (to check them against the sources)."""
        found: dict[str, list[str]] = {}
        for blocks in (*self.blocks.values(), *self.providers.values()):
            for block in blocks:
                for source in block.sources:
                    found.setdefault(source, []).append(f"{block.file}: {block.key}")
        return found

    def get_egress_path_config(self, domain: str, source: str, site_name: str) -> Any:
        """The merged ``EgressPathConfig``; a coroutine only when the MX must be looked up."""
        key = (domain.lower() if self._domain_specific(domain) else None, site_name, source)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if self._needs_mx_hosts():
            return self._resolve_with_mx(key, domain, source, site_name)
        return self._store(key, self._merge(domain, source, site_name, ()))

    # ------------------------------------------------------------------ lookup
    async def _resolve_with_mx(
        self, key: tuple[str | None, str, str], domain: str, source: str, site_name: str
    ) -> EgressPathConfig:
        hosts: Sequence[str] = ()
        if self._lookup_mx is not None:
            try:
                hosts = (await self._lookup_mx(domain)).get("hosts") or ()
            except Exception as exc:  # no MX: providers matched by MX cannot match
                log.debug("shaping: MX lookup for %s failed: %s", domain, exc)
        return self._store(key, self._merge(domain, source, site_name, hosts))

    def _store(
        self, key: tuple[str | None, str, str], config: EgressPathConfig
    ) -> EgressPathConfig:
        self._cache[key] = config
        return config

    def _domain_specific(self, domain: str) -> bool:
        return self._by_domain_suffix or domain.lower() in self.by_domain

    def _needs_mx_hosts(self) -> bool:
        return self._by_mx_host

    def _note_match_kinds(self) -> None:
        """Which provider matches exist, computed once: lookups consult these flags."""
        kinds = {k for blocks in self.providers.values() for b in blocks for k, _ in b.match}
        self._by_domain_suffix = "DomainSuffix" in kinds
        self._by_mx_host = bool(kinds - {"DomainSuffix"})

    def matching_providers(self, domain: str, hosts: Sequence[str]) -> list[str]:
        return [
            name
            for name, blocks in self.providers.items()
            if provider_matches([m for b in blocks for m in b.match], domain, hosts)
        ]

    async def params_for(self, domain: str, source: str, site_name: str) -> dict[str, Any]:
        """The merged options of a path before they become a config (not cached):
        automation lays its overrides over them."""
        hosts: Sequence[str] = ()
        if self._needs_mx_hosts() and self._lookup_mx is not None:
            try:
                hosts = (await self._lookup_mx(domain)).get("hosts") or ()
            except Exception as exc:
                log.debug("shaping: MX lookup for %s failed: %s", domain, exc)
        return self._params(domain, source, site_name, hosts)

    def _merge(
        self, domain: str, source: str, site_name: str, hosts: Sequence[str]
    ) -> EgressPathConfig:
        params = self._params(domain, source, site_name, hosts)
        return EgressPathConfig.from_options(params, function="shaping")

    def _params(
        self, domain: str, source: str, site_name: str, hosts: Sequence[str]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        default = self.blocks.get("default", [])
        apply_blocks(params, default)
        apply_blocks(params, [b.sources[source] for b in default if source in b.sources])
        for name in self.matching_providers(domain, hosts):
            blocks = self.providers[name]
            apply_blocks(params, blocks, provider=(name, source))
            apply_blocks(
                params,
                [b.sources[source] for b in blocks if source in b.sources],
                provider=(name, source),
            )
            params["provider_name"] = name
        site_blocks = self.by_site.get(site_name, [])
        domain_blocks = self.by_domain.get(domain.lower(), [])
        apply_blocks(params, site_blocks)
        apply_blocks(params, domain_blocks)
        apply_blocks(params, [b.sources[source] for b in site_blocks if source in b.sources])
        apply_blocks(params, [b.sources[source] for b in domain_blocks if source in b.sources])
        # As KumoMTA's helper: kept until the configuration epoch changes (an edit of a
        # shaping file reloads the policy) unless the shaping data says otherwise.
        params.setdefault("refresh_strategy", "Epoch")
        return params

    # ------------------------------------------------------------------ loading
    def add_file(self, file: str, data: dict[str, Any]) -> None:
        for name, value in data.items():
            if name == "provider":
                for provider, section in table(HELPER, file, "provider", value).items():
                    block = parse_block(
                        file, key_path("provider", provider), section, provider=True
                    )
                    self.providers.setdefault(provider, []).append(block)
            else:
                block = parse_block(file, key_path("", name), value)
                self.blocks.setdefault(name.lower(), []).append(block)

    def report(self, option: str, message: str) -> None:
        severity = self.options[option]
        if severity == "Error":
            self.errors.append(message)
        elif severity == "Warn":
            self.warnings.append(message)
            log.warning("%s", message)

    async def resolve_sites(self, lookup_mx: MxLookup | None) -> None:
        """Key each domain block by its site name (mx_rollup) or its domain name."""
        self._lookup_mx = lookup_mx
        self._note_match_kinds()
        first_at_site: dict[str, str] = {}
        for name, blocks in self.blocks.items():
            if name == "default":
                continue
            if not all(b.mx_rollup for b in blocks) or lookup_mx is None:
                self.by_domain[name] = blocks
                continue
            mx = await self._mx_for_block(lookup_mx, name, blocks[0])
            if mx is None:
                self.by_domain[name] = blocks
                continue
            site, hosts = str(mx.get("site_name") or ""), list(mx.get("hosts") or [])
            if site in first_at_site:
                self.report(
                    "aliased_site",
                    f"{HELPER}: {blocks[0].file}: [{blocks[0].key}] "
                    f"and [{first_at_site[site]}] both roll up to site {site!r}; "
                    "their settings merge",
                )
            first_at_site.setdefault(site, blocks[0].key)
            self.by_site.setdefault(site, []).extend(blocks)
            overlap = self.matching_providers(name, hosts)
            if overlap:
                self.report(
                    "provider_overlap",
                    f"{HELPER}: {blocks[0].file}: "
                    f"[{blocks[0].key}] is also matched by provider {overlap[0]!r}",
                )

    async def _mx_for_block(
        self, lookup_mx: MxLookup, name: str, block: Block
    ) -> Mapping[str, Any] | None:
        where = f"{HELPER}: {block.file}: [{block.key}]"
        try:
            mx = await lookup_mx(name)
        except Exception as exc:
            self.report(
                "dns_fail",
                f"{where}: MX lookup failed ({exc}); the block applies to this domain name only",
            )
            return None
        hosts = [str(h) for h in mx.get("hosts") or []]
        if not hosts or hosts == ["."] or not mx.get("site_name"):  # RFC 7505 null MX
            self.report(
                "null_mx",
                f"{where}: the domain has a null MX; the block applies to this domain name only",
            )
            return None
        return mx


async def load(
    files: Any, options: Mapping[str, Any] | None = None, lookup_mx: MxLookup | None = None
) -> Shaping:
    """Load and validate shaping files; raise on the first error (with file and key)."""
    shaping = Shaping(options)
    for index, entry in enumerate(file_list(HELPER, files), 1):
        if isinstance(entry, dict):
            shaping.add_file(f"<inline table {index}>", entry)
            continue
        if entry.startswith(("http://", "https://")):
            if not shaping.remote.skip:
                await _add_remote(shaping, entry)
            continue
        try:
            data = load_data_file(HELPER, entry)
        except DataFileError as exc:
            if shaping.options["local_load"] == "Error" or "cannot read" not in exc.problem:
                raise
            shaping.report("local_load", str(exc))
            continue
        shaping.add_file(entry, data)
    await shaping.resolve_sites(lookup_mx)
    if shaping.errors:
        raise DataFileError(HELPER, "shaping", "", "; ".join(shaping.errors))
    return shaping


async def _add_remote(shaping: Shaping, url: str) -> None:
    """A shaping source over HTTP (a tsa-daemon's ``get_config_v1/shaping.toml``, shared
    rules): a failure is reported as ``remote_load`` says (default: ignored)."""
    try:
        data = await fetch_data(HELPER, url, shaping.remote.timeout)
    except DataFileError as exc:
        shaping.report("remote_load", str(exc))
        return
    shaping.add_file(url, data)


__all__ = ["Shaping", "is_toml", "load"]
