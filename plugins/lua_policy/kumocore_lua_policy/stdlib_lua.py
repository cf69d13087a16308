"""Installing ``stdlib.lua``: the Lua-side parts of the ``kumo`` standard library.

Run once per Lua runtime, after
:func:`~kumocore_lua_policy.policy_runtime.build_kumo_table`, with the Python helpers it
needs (the memoize registry and KumoMTA's names). See ``stdlib.lua``.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from kumocore import ConfigError
from kumocore_lua_policy.engine import LuaEngine
from kumocore_lua_policy.kumomta_names import KUMOMTA_FUNCTIONS
from kumocore_lua_policy.stdlib import LuaStdlib
from kumocore_lua_policy.stdlib.version import version

# The bridge's chunk name: error positions then skip these frames (bridge.policy_frame).
_CHUNK_NAME = "=kumo-bridge"


def _unsupported(name: str) -> None:
    """Raised for a KumoMTA name kumocore lacks: a ConfigError, so that ``kumocore
    validate`` counts a handler reaching one as an error (it fails every message that
    gets there), not as a warning about one sample."""
    raise ConfigError(f"KumoMTA's '{name}' is not supported by kumocore yet")


def _identity(value: Any) -> Any:
    return value


def install_stdlib(engine: LuaEngine, kumo: Any, stdlib: LuaStdlib) -> None:
    memo = stdlib.memo

    def memo_cache(params: Any) -> str:
        return memo.cache(params).params.name

    helpers = {
        "memo_cache": engine.wrap(memo_cache, "kumo.memoize"),
        "memo_lookup": engine.wrap(memo.lookup, "kumo.memoize"),
        "memo_store": engine.wrap(memo.store, "kumo.memoize"),
        "kumomta_names": engine.conv.to_lua(sorted(KUMOMTA_FUNCTIONS)),
        # Python data -> a Lua table, through the bridge (kumo.jsonl filters: stdlib.lua).
        "as_table": engine.wrap(_identity, "kumo.jsonl"),
        # Named as its message begins, so that the bridge adds no "<function>: " prefix.
        "unsupported": engine.wrap(_unsupported, "KumoMTA's"),
    }
    # A string in KumoMTA, not a function (see stdlib/version.py).
    kumo["version"] = version()
    source = resources.files(__package__).joinpath("stdlib.lua").read_text("utf-8")
    chunk = engine.lua.eval("load")(source, _CHUNK_NAME)
    chunk(kumo, engine.table(helpers))
