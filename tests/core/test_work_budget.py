"""The work budget (kumocore.node.work_budget) that bounds queued deferred_generation
requests expanding and large inject requests being checked: how many run at once, in
what order the others get in, and what a cancelled request gives back."""

from __future__ import annotations

import asyncio

from kumocore.node.work_budget import WorkBudget

MIB = 1024 * 1024


async def _hold(budget: WorkBudget, size: int, order: list[str], name: str,
                release: asyncio.Event) -> None:  # fmt: skip
    async with budget.admitted(size):
        order.append(name)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_past_the_count_wait_and_get_in_first_come_first_served() -> None:
    budget, order, release = WorkBudget(max_bytes=100 * MIB, max_requests=2), [], {}
    tasks = []
    for name in "abcd":
        release[name] = asyncio.Event()
        tasks.append(asyncio.create_task(_hold(budget, 1, order, name, release[name])))
        await _settle()
    assert order == ["a", "b"] and budget.requests == 2
    release["b"].set()
    await _settle()
    assert order == ["a", "b", "c"]
    release["a"].set()
    await _settle()
    assert order == ["a", "b", "c", "d"]
    for event in release.values():
        event.set()
    await asyncio.gather(*tasks)
    assert (budget.requests, budget.bytes) == (0, 0)


async def test_the_byte_budget_holds_a_third_large_request_and_one_over_it_runs_alone() -> None:
    budget, order = WorkBudget(max_bytes=4 * MIB, max_requests=4), []
    events = {name: asyncio.Event() for name in ("one", "two", "three", "huge")}
    tasks = [asyncio.create_task(_hold(budget, 2 * MIB, order, n, events[n]))
             for n in ("one", "two", "three")]  # fmt: skip
    await _settle()
    assert order == ["one", "two"] and budget.bytes == 4 * MIB
    tasks.append(asyncio.create_task(_hold(budget, 9 * MIB, order, "huge", events["huge"])))
    events["one"].set()
    events["two"].set()
    await _settle()
    assert order == ["one", "two", "three"]  # "huge" waits behind it, in order
    events["three"].set()
    await _settle()
    assert order[-1] == "huge" and budget.requests == 1 and budget.bytes == 9 * MIB
    events["huge"].set()
    await asyncio.gather(*tasks)
    assert (budget.requests, budget.bytes) == (0, 0)


async def test_a_cancelled_waiter_leaves_the_line_and_those_behind_it_get_in() -> None:
    budget, order = WorkBudget(max_bytes=4 * MIB, max_requests=4), []
    first, big, small = asyncio.Event(), asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(_hold(budget, 3 * MIB, order, "first", first))
    await _settle()
    waiting_big = asyncio.create_task(_hold(budget, 2 * MIB, order, "big", big))
    waiting_small = asyncio.create_task(_hold(budget, MIB, order, "small", small))
    await _settle()
    assert order == ["first"]  # "small" would fit, but waits its turn behind "big"
    waiting_big.cancel()
    await _settle()
    assert order == ["first", "small"] and budget.bytes == 4 * MIB
    first.set()
    small.set()
    await asyncio.gather(running, waiting_small)
    assert waiting_big.cancelled() and (budget.requests, budget.bytes) == (0, 0)


async def test_a_request_cancelled_as_it_is_admitted_gives_its_place_back() -> None:
    budget, order = WorkBudget(max_bytes=4 * MIB, max_requests=1), []
    first, second = asyncio.Event(), asyncio.Event()
    waiting: asyncio.Task[None] | None = None

    async def first_then_cancel_the_next() -> None:
        async with budget.admitted(MIB):
            order.append("first")
            await first.wait()
        # Leaving admitted "second" (its turn came), and it has not resumed yet.
        assert budget.requests == 1 and waiting is not None
        waiting.cancel()

    running = asyncio.create_task(first_then_cancel_the_next())
    await _settle()
    waiting = asyncio.create_task(_hold(budget, MIB, order, "second", second))
    await _settle()
    first.set()
    await running
    await asyncio.gather(waiting, return_exceptions=True)
    assert waiting.cancelled() and order == ["first"]
    assert (budget.requests, budget.bytes) == (0, 0)
