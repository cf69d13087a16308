"""The pytest plugin of :mod:`kumocore.testing` (entry point ``pytest11: kumocore``).

Fixtures:

* ``make_node`` — an async factory: ``node = await make_node(policy=..., zones=...,
  plugins=[...], spool="rocksdb")`` takes :class:`kumocore.testing.Node`'s arguments and
  returns a started node; every node it made is stopped after the test.
* ``kumocore_node`` — one started node with no policy (defaults, memory spool).

Only this module is imported when pytest starts; kumocore's server is imported when a
fixture is first used, so test runs that use none pay nothing. Disable the plugin with
``-p no:kumocore``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kumocore.testing.node import Node

MakeNode = Callable[..., Awaitable["Node"]]

# kumocore[testing] installs pytest-asyncio; without it the fixtures say so when used
# rather than breaking every pytest run of a machine that has kumocore installed.
HAVE_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None


def _missing_asyncio() -> None:
    pytest.fail("kumocore.testing's fixtures need pytest-asyncio: "
                "pip install 'kumocore[testing]'", pytrace=False)


if HAVE_PYTEST_ASYNCIO:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def make_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MakeNode]:
        """``await make_node(policy, **options)``: a started :class:`Node`."""
        from kumocore.testing.node import Node

        nodes: list[Node] = []

        async def make(policy: Any = None, **options: Any) -> Node:
            options.setdefault("tmp_path", tmp_path_factory.mktemp("kumocore-node"))
            node = Node(policy, **options)
            await node.start()
            nodes.append(node)
            return node

        yield make
        for node in reversed(nodes):
            await node.stop()

    @pytest_asyncio.fixture
    async def kumocore_node(make_node: MakeNode) -> Node:
        """A started node with kumocore's defaults and no policy."""
        return await make_node()

else:  # pragma: no cover

    @pytest.fixture
    def make_node() -> None:
        _missing_asyncio()

    @pytest.fixture
    def kumocore_node() -> None:
        _missing_asyncio()
