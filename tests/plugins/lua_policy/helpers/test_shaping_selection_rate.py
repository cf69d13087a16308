"""Selection rates through policy-extras.shaping: ``source_selection_rate`` in a shaping
block, and ``provider_source_selection_rate`` in a provider's source block, which (as
KumoMTA's helper does) becomes the ``additional_source_selection_rates`` entry
``shaping-provider-<provider>-<source>-selection-rate``: one name, so one budget, for
that source on every site of the provider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kumocore_lua_policy import LuaPolicyError

from tests.plugins.lua_policy.helpers.conftest import Load
from tests.plugins.lua_policy.helpers.test_shaping import load, path_config

SHAPING = """
[provider."google"]
match = [{ MXSuffix = ".google.com" }]
[provider."google".sources."new-ip"]
provider_source_selection_rate = "500/d,max_burst=1"

["gmail.test"]
mx_rollup = false  # its own block: workspace.test (same MX) does not get it
["gmail.test".sources."new-ip"]
additional_source_selection_rates = { own = "10/h" }

["plain.test".sources."new-ip"]
source_selection_rate = "100/d,max_burst=1"
"""


def rates(config: Any) -> dict[str, str]:
    return {k: str(v) for k, v in config.additional_source_selection_rates.items()}


async def test_provider_source_selection_rate_becomes_a_provider_wide_named_rate(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    runtime, policy = await load(load_policy, files, a=SHAPING, b="{}")
    key = "shaping-provider-google-new-ip-selection-rate"
    workspace = await path_config(runtime, policy, "workspace.test", "new-ip")
    assert workspace.source_selection_rate is None
    assert rates(workspace) == {key: "500/d,max_burst=1"}
    # The domain's own map entry merges with the provider's, key by key.
    gmail = await path_config(runtime, policy, "gmail.test", "new-ip")
    assert rates(gmail) == {key: "500/d,max_burst=1", "own": "10/h"}
    # Another source of the provider, and a site outside it, get no provider rate.
    assert rates(await path_config(runtime, policy, "gmail.test", "old-ip")) == {}
    plain = await path_config(runtime, policy, "plain.test", "new-ip")
    assert rates(plain) == {}
    assert str(plain.source_selection_rate) == "100/d,max_burst=1"


@pytest.mark.parametrize(
    ("shaping", "expected"),
    [
        # Only a provider's source block may carry it, as in KumoMTA.
        ('[provider."p"]\nmatch = [{ DomainSuffix = ".x" }]\n'
         'provider_source_selection_rate = "5/d"\n',
         r"provider.p.provider_source_selection_rate: unknown key"),
        ('["x.test".sources."s"]\nprovider_source_selection_rate = "5/d"\n',
         r'"x.test".sources.s.provider_source_selection_rate: unknown key'),
        ('[provider."p"]\nmatch = [{ DomainSuffix = ".x" }]\n'
         '[provider."p".sources."s"]\nprovider_source_selection_rate = "lots"\n',
         r"provider.p.sources.s.provider_source_selection_rate: expected a rate"),
        ('["x.test".sources."s"]\nsource_selection_rate = "5/fortnight"\n',
         r"invalid value for .source_selection_rate."),
    ],
)  # fmt: skip
async def test_a_misplaced_or_bad_selection_rate_is_refused_at_load(
    load_policy: Load, files: Callable[..., Path], shaping: str, expected: str
) -> None:
    with pytest.raises(LuaPolicyError, match=expected):
        await load(load_policy, files, a=shaping, b="{}")
