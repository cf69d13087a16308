"""``policy-extras.sources``: egress sources and pools from data files.

File format (TOML or JSON)::

    [source."ip-1"]
    source_address = "10.0.0.1"      # any kumo.make_egress_source option but name
    ehlo_domain = "mta1.example.com"

    [pool."pool-1"]
    [pool."pool-1"."ip-1"]           # a member; weight defaults to 1
    weight = 2

Several files merge: a source's keys key by key, a pool's members by source name (later
files win). Every pool member must name a source defined in one of the files: a typo
would otherwise only show up as undeliverable mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kumocore.config import EgressPool, EgressSource
from kumocore_lua_policy.extras.datafile import (
    DataFileError,
    build_options,
    check_keys,
    expect,
    key_path,
    load_all,
    table,
)

HELPER = "policy-extras.sources"


class Sources:
    """The validated sources and pools; answers ``get_egress_source``/``get_egress_pool``."""

    def __init__(self, files: Sequence[str | dict[str, Any]]) -> None:
        self._source_params: dict[str, dict[str, Any]] = {}
        self._source_where: dict[str, tuple[str, str]] = {}
        self._pool_members: dict[str, dict[str, tuple[int, str, str]]] = {}
        load_all(HELPER, files, self._merge_file)
        self.sources = {
            name: build_options(
                HELPER, *self._source_where[name], EgressSource, {**params, "name": name}
            )
            for name, params in self._source_params.items()
        }
        self.pools = {
            name: self._pool(name, members) for name, members in self._pool_members.items()
        }

    def get_egress_source(self, name: str) -> EgressSource | None:
        return self.sources.get(name)

    def get_egress_pool(self, name: str) -> EgressPool | None:
        return self.pools.get(name)

    def _merge_file(self, file: str, data: dict[str, Any]) -> None:
        check_keys(HELPER, file, "", data, ("source", "pool"))
        for name, params in table(HELPER, file, "source", data.get("source", {})).items():
            key = key_path("source", name)
            params = dict(table(HELPER, file, key, params))
            if params.pop("name", name) != name:
                raise DataFileError(
                    HELPER, file, key_path(key, "name"), "must be the section's name (or left out)"
                )
            self._source_params.setdefault(name, {}).update(params)
            self._source_where[name] = (file, key)
        for pool, members in table(HELPER, file, "pool", data.get("pool", {})).items():
            pool_key = key_path("pool", pool)
            target = self._pool_members.setdefault(pool, {})
            for source, entry in table(HELPER, file, pool_key, members).items():
                key = key_path(pool_key, source)
                entry = table(HELPER, file, key, entry)
                check_keys(HELPER, file, key, entry, ("weight",))
                weight = expect(
                    HELPER,
                    file,
                    key_path(key, "weight"),
                    entry.get("weight", 1),
                    int,
                    "a whole number",
                )
                target[source] = (weight, file, key)

    def _pool(self, name: str, members: dict[str, tuple[int, str, str]]) -> EgressPool:
        entries = []
        for source, (weight, file, key) in members.items():
            if source not in self.sources:
                known = ", ".join(sorted(self.sources)) or "none"
                raise DataFileError(
                    HELPER,
                    file,
                    key,
                    f"pool member {source!r} is not a source defined in "
                    f"[source.*] of any sources file (defined: {known})",
                )
            entries.append({"name": source, "weight": weight})
        if not entries:
            raise DataFileError(
                HELPER, "<sources files>", key_path("pool", name), "pool has no members"
            )
        return EgressPool.from_options({"name": name, "entries": entries})
