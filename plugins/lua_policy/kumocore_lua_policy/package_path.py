"""Where a Lua policy's ``require`` looks: its ``package.path``.

An operator's ``$KUMOCORE_LUA_PATH`` first, then the policy file's own directory,
kumocore's own Lua modules (its ``policy-extras``), KumoMTA's install locations and Lua's
default path, so that a policy written for KumoMTA finds its helper modules unchanged.

Its own module because it is a search order, decided before any Lua runs; the runtime
(:mod:`kumocore_lua_policy.engine`) only installs the path it is given.
"""

from __future__ import annotations

import os
from importlib import resources

#: KumoMTA's install locations, searched after kumocore's own (as ``kumod`` sets them, plus
#: ``share/policy-extras`` so that ``require 'sources'`` finds a helper module too).
KUMOMTA_LUA_DIRS = (
    "/opt/kumomta/etc/policy",
    "/opt/kumomta/share",
    "/opt/kumomta/share/policy-extras",
)

#: kumocore's own Lua module directories, searched after the policy's directory.
#: kumocore's own Lua modules (``policy-extras/*.lua``), found before KumoMTA's copies.
KUMOCORE_LUA_DIRS: list[str] = [str(resources.files(__package__).joinpath("lua"))]


def lua_package_path(policy_dir: str | None, default: str) -> str:
    """The ``package.path`` of a Lua policy, in search order:

    1. the directories of ``$KUMOCORE_LUA_PATH`` (``:``-separated; an entry holding ``?`` is
       used as a template as is) — so an operator can point at KumoMTA's helper files
       wherever they are;
    2. the policy file's own directory;
    3. kumocore's own module directories (:data:`KUMOCORE_LUA_DIRS`);
    4. KumoMTA's install locations (:data:`KUMOMTA_LUA_DIRS`);
    5. Lua's default path.

    Each directory ``D`` contributes ``D/?.lua`` and ``D/?/init.lua``.
    """
    dirs = [d for d in os.environ.get("KUMOCORE_LUA_PATH", "").split(os.pathsep) if d]
    if policy_dir:
        dirs.append(policy_dir)
    dirs.extend(KUMOCORE_LUA_DIRS)
    dirs.extend(KUMOMTA_LUA_DIRS)
    templates: list[str] = []
    for directory in dirs:
        if "?" in directory:
            templates.append(directory)
        else:
            templates.extend((f"{directory}/?.lua", f"{directory}/?/init.lua"))
    templates.extend(t for t in default.split(";") if t)
    return ";".join(dict.fromkeys(templates))
